package history_test

import (
	"context"
	"fmt"
	"time"

	"github.com/latchws/latch/history"
)

// A client subscribes to an empty channel, sees one message, drops off
// while two more are published, and recovers them on its return.
func ExampleMemory() {
	ctx := context.Background()
	store := history.NewMemory(history.MemoryConfig{})
	defer store.Close()
	keep := history.Retention{Size: 100, TTL: 5 * time.Minute}
	publish := func(text string) {
		store.Append(ctx, "chat:lobby", keep, func(p history.Position) []byte {
			return fmt.Appendf(nil, `{"type":"message","channel":"chat:lobby","offset":%d,"data":%q}`, p.Offset, text)
		})
	}

	// Subscribing to the empty channel: the ack carries its top.
	seen, _ := store.Top(ctx, "chat:lobby")
	publish("hello")
	seen.Offset = 1 // the client saw the first message
	publish("are you there?")
	publish("bye")

	pubs, top, recovered, err := history.Recover(ctx, store, "chat:lobby", seen, 100)
	if err != nil {
		panic(err)
	}
	for _, p := range pubs {
		fmt.Printf("%s\n", p.Data)
	}
	fmt.Println("recovered:", recovered, "top:", top.Offset, "same epoch:", top.Epoch == seen.Epoch)

	// A position from an epoch the store no longer has: start afresh.
	_, _, recovered, _ = history.Recover(ctx, store, "chat:lobby", history.Position{Offset: 1, Epoch: "gone"}, 100)
	fmt.Println("recovered:", recovered)
	// Output:
	// {"type":"message","channel":"chat:lobby","offset":2,"data":"are you there?"}
	// {"type":"message","channel":"chat:lobby","offset":3,"data":"bye"}
	// recovered: true top: 3 same epoch: true
	// recovered: false
}

func ExampleCovers() {
	top := history.Position{Offset: 10, Epoch: "e1"}
	oldest := uint64(6) // publications 6..10 are kept
	fmt.Println(history.Covers(history.Position{Offset: 10, Epoch: "e1"}, top, oldest))
	fmt.Println(history.Covers(history.Position{Offset: 5, Epoch: "e1"}, top, oldest))
	fmt.Println(history.Covers(history.Position{Offset: 4, Epoch: "e1"}, top, oldest))
	fmt.Println(history.Covers(history.Position{Offset: 7, Epoch: "e0"}, top, oldest))
	// Output:
	// true
	// true
	// false
	// false
}
