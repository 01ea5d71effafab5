// Command gws is the lxzan/gws echo server of the bench, as gws's README
// shows it: gws.NewServer with an event handler that echoes in OnMessage.
package main

import (
	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/lxzan/gws"
)

type handler struct{ gws.BuiltinEventHandler }

func (handler) OnPing(c *gws.Conn, payload []byte) { _ = c.WritePong(payload) }

func (handler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

// quiet drops gws's log lines: the runner's readiness probe connects and
// hangs up without a handshake, which gws would log as an error.
type quiet struct{}

func (quiet) Error(...any) {}

func main() {
	f := srvutil.Parse()
	opt := &gws.ServerOption{
		ReadMaxPayloadSize: srvutil.ReadLimit,
		Logger:             quiet{},
		PermessageDeflate:  gws.PermessageDeflate{Enabled: f.Compress},
	}
	srv := gws.NewServer(handler{}, opt)
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	_ = srv.RunListener(ln)
}
