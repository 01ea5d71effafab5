package presence_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchws/latch/presence"
)

func ExampleNewMemory() {
	ctx := context.Background()
	store := presence.NewMemory()
	defer store.Close()
	now := time.Now()
	store.Add(ctx, "chat:lobby", presence.Info{Client: "17", User: "ann", ConnectedAt: now})
	store.Add(ctx, "chat:lobby", presence.Info{Client: "18", User: "bob", ConnectedAt: now})
	store.Remove(ctx, "chat:lobby", "17")

	clients, _ := store.List(ctx, "chat:lobby")
	slices.SortFunc(clients, func(a, b presence.Info) int { return strings.Compare(a.Client, b.Client) })
	for _, c := range clients {
		fmt.Println(c.Client, c.User)
	}
	// Output:
	// 18 bob
}
