package broker_test

import (
	"context"
	"fmt"

	"github.com/latchws/latch/broker"
)

func ExampleInterest() {
	b := broker.NewMemory(func(channel string, payload []byte) {
		// In a server: hub.Publish(channel, websocket.TextMessage, payload)
		fmt.Printf("%s: %s\n", channel, payload)
	})
	defer b.Close()
	in := broker.NewInterest(b)

	in.Add("news") // first local subscriber: b.Subscribe("news")
	in.Add("news") // second: no broker call
	b.Publish(context.Background(), "news", []byte("hello"))

	in.Remove("news")
	in.Remove("news") // last one gone: b.Unsubscribe("news")
	b.Publish(context.Background(), "news", []byte("nobody listens"))
	fmt.Println(b.Stats().Published, b.Stats().Received)
	// Output:
	// news: hello
	// 2 1
}
