package auth_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/latchws/latch/auth"
)

func ExampleVerifier() {
	secret := []byte("a demo secret of at least 32 bytes!")
	now := time.Unix(1700000000, 0)
	v, err := auth.NewVerifier(auth.Config{
		HMACSecret: secret,
		Now:        func() time.Time { return now }, // fixed, for the example
	})
	if err != nil {
		panic(err)
	}
	defer v.Close()

	token, err := auth.SignHS256(secret, auth.Identity{
		User:      "ann",
		ExpiresAt: now.Add(time.Hour),
		Subscribe: []string{"chat:*", "news:eu"},
		Publish:   []string{"chat:lobby"},
	}, now)
	if err != nil {
		panic(err)
	}

	id, err := v.Verify(context.Background(), token)
	if err != nil {
		panic(err)
	}
	fmt.Println("user:", id.User, "expires:", id.ExpiresAt.Unix())
	fmt.Println("subscribe chat:random:", id.CanSubscribe("chat:random"))
	fmt.Println("publish chat:random:", id.CanPublish("chat:random"))

	// An hour later the same token has expired.
	now = now.Add(time.Hour)
	_, err = v.Verify(context.Background(), token)
	fmt.Println(err, errors.Is(err, auth.ErrTokenExpired))

	// Output:
	// user: ann expires: 1700003600
	// subscribe chat:random: true
	// publish chat:random: false
	// auth: token expired true
}

func ExampleMatch() {
	fmt.Println(auth.Match("chat:*", "chat:lobby"))
	fmt.Println(auth.Match("chat:*", "news:eu"))
	fmt.Println(auth.Match("*#ann", "dm:inbox#ann"))
	fmt.Println(auth.Match("", "chat:lobby"))
	// Output:
	// true
	// false
	// true
	// false
}
