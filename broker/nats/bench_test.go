package nats

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// BenchmarkCrossNode measures fan-out through latch nodes: a WebSocket
// client publishes on one node and a client subscribed on another receives
// the messages. It reports messages/s and the p50/p99 latency from sending
// the publish to receiving the message. window-1 waits for each ack before
// the next publish (latency without queueing); window-64 keeps up to 64
// publishes awaiting their ack (throughput; latency then includes queueing).
//
//	local:      one node, in-process broker (publisher and subscriber on it)
//	nats:       two nodes on one NATS server
//	nats-route: two nodes on different servers of a two-server NATS cluster
func BenchmarkCrossNode(b *testing.B) {
	always := func() bool { return true }
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("local/window-%d", window), func(b *testing.B) {
			n := startLatch(b, nil)
			benchFanout(b, n, n, window, always)
		})
		b.Run(fmt.Sprintf("nats/window-%d", window), func(b *testing.B) {
			s := startServer(b, 0)
			benchFanout(b, startNode(b, []string{s.ClientURL()}), startNode(b, []string{s.ClientURL()}), window, always)
		})
		b.Run(fmt.Sprintf("nats-route/window-%d", window), func(b *testing.B) {
			s1, s2 := startCluster(b)
			pub, sub := startNode(b, []string{s1.ClientURL()}), startNode(b, []string{s2.ClientURL()})
			// The subscription must have crossed the route.
			ready := func() bool { return s1.GlobalAccount().Interest("latch.ch.room") >= 1 }
			benchFanout(b, pub, sub, window, ready)
		})
	}
}

// benchFanout runs the benchmark once ready reports that the subscription
// is known where the publisher's messages enter NATS.
func benchFanout(b *testing.B, from, to *latchNode, window int, ready func() bool) {
	sub := dialNode(b, to)
	sub.send(b, `{"op":"subscribe","channel":"room","id":"0"}`)
	if a := sub.answer(b, 0); a != "ack" {
		b.Fatalf("subscribe: %s", a)
	}
	for deadline := time.Now().Add(10 * time.Second); !ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("subscription not propagated in 10s")
		}
	}
	pub := dialNode(b, from)
	lat := make([]time.Duration, 0, b.N)
	errc := make(chan error, 2)
	credits := make(chan struct{}, window)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(quit) // on a failure, frees the goroutines below

	b.ResetTimer()
	start := time.Now()
	wg.Go(func() { // acks: each frees a place in the window
		for i := range b.N {
			a, err := pub.tryAnswer(i + 1)
			if err == nil && a != "ack" {
				err = fmt.Errorf("publish %d: %s", i+1, a)
			}
			if err != nil {
				errc <- err
				return
			}
			<-credits
		}
	})
	wg.Go(func() {
		for i := range b.N {
			select {
			case credits <- struct{}{}:
			case <-quit:
				return
			}
			msg := fmt.Sprintf(`{"op":"publish","channel":"room","data":{"n":%d,"t":%d},"id":"%d"}`, i+1, time.Now().UnixNano(), i+1)
			if err := pub.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				errc <- err
				return
			}
		}
	})
	for i := range b.N {
		var p []byte
		select {
		case m, ok := <-sub.in:
			if !ok {
				b.Fatalf("subscriber connection ended: %v", sub.err)
			}
			p = m
		case err := <-errc:
			b.Fatal(err)
		case <-time.After(10 * time.Second):
			b.Fatalf("message %d not received in 10s", i+1)
		}
		now := time.Now()
		var m wire
		if err := json.Unmarshal(p, &m); err != nil || m.Data.N != i+1 {
			b.Fatalf("message %d: %s (%v)", i+1, p, err)
		}
		lat = append(lat, now.Sub(time.Unix(0, m.Data.T)))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
