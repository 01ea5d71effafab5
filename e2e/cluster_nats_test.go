package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startNATSCluster runs n NATS servers with JetStream in the test process,
// joined in one cluster on loopback, each storing in a directory of its
// own, and waits until JetStream has a meta leader that knows all n.
// Cleanup shuts down the servers still running (Shutdown twice is fine).
func startNATSCluster(t *testing.T, n int) []*natsserver.Server {
	t.Helper()
	// Every server routes to every other, so the route ports are chosen
	// before any server starts. A port taken by someone else between
	// Close and the server's bind makes NewServer or Start fail: loudly.
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	servers := make([]*natsserver.Server, n)
	for i := range n {
		s, err := natsserver.NewServer(&natsserver.Options{
			ServerName: fmt.Sprintf("nats%d", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: natsserver.ClusterOpts{Name: "latch-e2e", Host: "127.0.0.1", Port: ports[i]},
			Routes:  natsserver.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatalf("nats-server %d: %v", i, err)
		}
		go s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		servers[i] = s
	}
	for i, s := range servers {
		if !s.ReadyForConnections(15 * time.Second) {
			t.Fatalf("nats-server %d not ready in 15s", i)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.ContainsFunc(servers, func(s *natsserver.Server) bool {
		return s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n
	}) {
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster of %d has no leader knowing every server within 20s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A leader is not yet a cluster that places streams on all n: create
	// one, as a latch node does at its start (its presence bucket), and
	// delete it.
	nc, err := natsgo.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "E2E_READY", Subjects: []string{"e2e.ready"}, Replicas: n})
		if err == nil {
			err = js.DeleteStream(ctx, "E2E_READY")
		}
		cancel()
		if err == nil {
			return servers
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster of %d cannot create a stream of %d replicas within 20s: %v", n, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamLeader returns the index of the server leading the stream of the
// global account, -1 while none does (an election).
func streamLeader(servers []*natsserver.Server, stream string) int {
	for i, s := range servers {
		if s.Running() && s.JetStreamIsStreamLeader(natsserver.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// moveStreamLeader asks JetStream to make servers[to] the leader of the
// stream (a stepdown with a preferred successor) and waits until it is.
func moveStreamLeader(t *testing.T, servers []*natsserver.Server, stream string, to int) {
	t.Helper()
	if streamLeader(servers, stream) == to {
		return
	}
	nc, err := natsgo.Connect(servers[(to+1)%len(servers)].ClientURL(), natsgo.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to NATS: %v", err)
	}
	defer nc.Close()
	req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, servers[to].Name())
	// Each round waits for the leader to change: the stepdown is answered
	// before the election.
	changed := func(from int) bool {
		for range 250 {
			if l := streamLeader(servers, stream); l >= 0 && l != from {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	for round := 0; ; round++ {
		from := streamLeader(servers, stream)
		if from == to {
			return
		}
		if round == 5 {
			t.Fatalf("%s: %s is not its leader after 5 stepdowns", stream, servers[to].Name())
		}
		if from < 0 {
			changed(-1) // an election: wait for its leader
			continue
		}
		msg, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(req), 5*time.Second)
		if err != nil {
			t.Logf("%s: stepdown: %v", stream, err)
			continue
		}
		var resp struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(msg.Data, &resp) == nil && resp.Error != nil {
			t.Logf("%s: stepdown: %s", stream, resp.Error.Description)
			continue
		}
		changed(from)
	}
}
