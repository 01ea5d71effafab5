package deflate

// Measurement behind docs/compression.md: the standard library's compress/flate against
// github.com/klauspost/compress/flate, used the way permessage-deflate uses them (RFC 7692 §7.2).
// klauspost is imported here only; nothing outside tests depends on it.
//
//	go test -run='^$' -bench=. -benchtime=200ms ./internal/deflate
//	go test -run='^$' -bench=Memory -benchtime=3x ./internal/deflate

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// RFC 7692 §7.2.1: a sender flushes and removes the empty stored block's 00 00 ff ff; §7.2.2: a receiver
// appends it back. The extra final empty stored block makes the reader return io.EOF at message end.
var (
	syncTail = []byte{0x00, 0x00, 0xff, 0xff}
	readTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
)

// flateWriter is the part of *flate.Writer both libraries share.
type flateWriter interface {
	io.Writer
	Flush() error
	Reset(io.Writer)
}

type flateLib struct {
	name      string
	newWriter func(w io.Writer, level int, dict []byte) (flateWriter, error)
	newReader func(r io.Reader, dict []byte) io.ReadCloser
}

var flateLibs = []flateLib{
	{
		name: "std",
		newWriter: func(w io.Writer, level int, dict []byte) (flateWriter, error) {
			return stdflate.NewWriterDict(w, level, dict)
		},
		newReader: stdflate.NewReaderDict,
	},
	{
		name: "klauspost",
		newWriter: func(w io.Writer, level int, dict []byte) (flateWriter, error) {
			return kflate.NewWriterDict(w, level, dict)
		},
		newReader: kflate.NewReaderDict,
	},
}

// Test messages: realistic JSON for chat and notifications, and log text for the big one.
var (
	benchMessages = []struct {
		name string
		data []byte
	}{
		{"json64B", chatJSON(64, 1)},
		{"json1KiB", chatJSON(1024, 2)},
		{"json16KiB", chatJSON(16<<10, 3)},
		{"log256KiB", logText(256<<10, 4)},
	}
	// dict32K stands for the previous 32 KiB of the stream under context takeover.
	dict32K = chatJSON(32<<10, 5)
)

var (
	users  = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	rooms  = []string{"general", "random", "dev", "ops", "support", "announcements"}
	words  = strings.Fields("the deploy is done please review my pull request lunch at noon? build failed again on arm64 fixed it thanks ok see you tomorrow who broke staging latency looks fine now ticket closed")
	levels = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}
	paths  = []string{"/api/v1/rooms", "/api/v1/messages", "/ws", "/healthz", "/api/v1/users/me", "/metrics"}
)

func sentence(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	return strings.Join(ws, " ")
}

// chatJSON builds exactly size bytes of JSON: one chat message for tiny sizes, an array of chat messages
// and notifications otherwise. Deterministic per seed.
func chatJSON(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	if size <= 128 {
		b := fmt.Appendf(nil, `{"t":"msg","room":"%s","from":"%s","text":"`, rooms[r.IntN(len(rooms))], users[r.IntN(len(users))])
		for len(b) < size-2 {
			b = append(b, words[r.IntN(len(words))][0])
		}
		return append(b, `"}`...)
	}
	b := []byte("[")
	id := 100000 + r.IntN(100000)
	for len(b) < size {
		id += 1 + r.IntN(5)
		if r.IntN(4) == 0 {
			b = fmt.Appendf(b, `{"type":"notification","id":%d,"user":"%s","kind":"mention","room":"%s","unread":%d,"ts":"2025-06-01T12:%02d:%02d.%03dZ"},`,
				id, users[r.IntN(len(users))], rooms[r.IntN(len(rooms))], r.IntN(50), r.IntN(60), r.IntN(60), r.IntN(1000))
		} else {
			b = fmt.Appendf(b, `{"type":"message","id":%d,"room":"%s","from":{"id":%d,"name":"%s"},"text":"%s","ts":"2025-06-01T12:%02d:%02d.%03dZ","edited":false},`,
				id, rooms[r.IntN(len(rooms))], r.IntN(1000), users[r.IntN(len(users))], sentence(r, 3+r.IntN(12)), r.IntN(60), r.IntN(60), r.IntN(1000))
		}
	}
	b = b[:size]
	b[size-1] = ']'
	return b
}

// logText builds size bytes of access-log-like lines.
func logText(size int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	var b []byte
	for len(b) < size {
		b = fmt.Appendf(b, "2025-06-01T12:%02d:%02d.%06dZ %-5s req_id=%016x remote=10.%d.%d.%d method=GET path=%s status=%d bytes=%d dur=%dus user=%s msg=%q\n",
			r.IntN(60), r.IntN(60), r.IntN(1000000), levels[r.IntN(len(levels))], r.Uint64(), r.IntN(256), r.IntN(256), r.IntN(256),
			paths[r.IntN(len(paths))], []int{200, 200, 200, 101, 304, 404, 500}[r.IntN(7)], r.IntN(20000), r.IntN(50000),
			users[r.IntN(len(users))], sentence(r, 2+r.IntN(6)))
	}
	return b[:size]
}

// compressMessage is the sender side of RFC 7692 §7.2.1 with a fresh (reset) writer.
func compressMessage(w flateWriter, out *bytes.Buffer, msg []byte) ([]byte, error) {
	out.Reset()
	w.Reset(out)
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return stripTail(out.Bytes())
}

func stripTail(b []byte) ([]byte, error) {
	if !bytes.HasSuffix(b, syncTail) {
		return nil, fmt.Errorf("compressed message does not end in 00 00 ff ff: % x", b[max(0, len(b)-8):])
	}
	return b[:len(b)-len(syncTail)], nil
}

func statelessMessage(out *bytes.Buffer, msg, dict []byte) ([]byte, error) {
	out.Reset()
	if err := kflate.StatelessDeflate(out, msg, false, dict); err != nil {
		return nil, err
	}
	return stripTail(out.Bytes())
}

// decompressMessage is the receiver side of RFC 7692 §7.2.2 with a reader reset for this message.
func decompressMessage(fr io.ReadCloser, in *bytes.Reader, wire []byte, dict []byte, out *bytes.Buffer) error {
	in.Reset(wire)
	if err := fr.(stdflate.Resetter).Reset(in, dict); err != nil {
		return err
	}
	out.Reset()
	_, err := out.ReadFrom(fr)
	return err
}

func withReadTail(payload []byte) []byte {
	return append(bytes.Clone(payload), readTail...)
}

// TestFlateInterop checks the pattern measured below: every compressor's per-message output, with and
// without a preset dictionary, inflates to the original with both libraries' readers.
func TestFlateInterop(t *testing.T) {
	t.Parallel()
	type producer struct {
		name     string
		compress func(msg, dict []byte) ([]byte, error)
	}
	var producers []producer
	for _, l := range flateLibs {
		for _, level := range []int{1, 6} {
			producers = append(producers, producer{fmt.Sprintf("%s-level%d", l.name, level), func(msg, dict []byte) ([]byte, error) {
				w, err := l.newWriter(io.Discard, level, dict)
				if err != nil {
					return nil, err
				}
				var out bytes.Buffer
				p, err := compressMessage(w, &out, msg)
				return bytes.Clone(p), err
			}})
		}
	}
	producers = append(producers, producer{"klauspost-stateless", func(msg, dict []byte) ([]byte, error) {
		var out bytes.Buffer
		p, err := statelessMessage(&out, msg, dict)
		return bytes.Clone(p), err
	}})
	for _, m := range benchMessages {
		for _, pr := range producers {
			for _, dict := range [][]byte{nil, dict32K} {
				payload, err := pr.compress(m.data, dict)
				if err != nil {
					t.Fatalf("%s %s: %v", pr.name, m.name, err)
				}
				if len(m.data) >= 1024 && len(payload) >= len(m.data) {
					t.Errorf("%s %s: %d bytes compressed to %d", pr.name, m.name, len(m.data), len(payload))
				}
				for _, l := range flateLibs {
					fr := l.newReader(bytes.NewReader(nil), nil)
					var out bytes.Buffer
					if err := decompressMessage(fr, new(bytes.Reader), withReadTail(payload), dict, &out); err != nil {
						t.Fatalf("%s %s dict=%v: %s reader: %v", pr.name, m.name, dict != nil, l.name, err)
					}
					if !bytes.Equal(out.Bytes(), m.data) {
						t.Fatalf("%s %s dict=%v: %s reader returned %d bytes, want the %d sent", pr.name, m.name, dict != nil, l.name, out.Len(), len(m.data))
					}
				}
			}
		}
	}
}

func BenchmarkCompress(b *testing.B) {
	for _, m := range benchMessages {
		for _, l := range flateLibs {
			for _, level := range []int{1, 6} {
				b.Run(fmt.Sprintf("%s/%s/level%d", m.name, l.name, level), func(b *testing.B) {
					pool := sync.Pool{New: func() any {
						w, err := l.newWriter(io.Discard, level, nil)
						if err != nil {
							panic(err)
						}
						return w
					}}
					var out bytes.Buffer
					var size int
					b.SetBytes(int64(len(m.data)))
					b.ReportAllocs()
					for b.Loop() {
						w := pool.Get().(flateWriter)
						p, err := compressMessage(w, &out, m.data)
						w.Reset(io.Discard) // drop the reference to out while pooled
						pool.Put(w)
						if err != nil {
							b.Fatal(err)
						}
						size = len(p)
					}
					b.ReportMetric(float64(size)/float64(len(m.data)), "ratio")
				})
			}
		}
		b.Run(m.name+"/klauspost-stateless", func(b *testing.B) {
			var out bytes.Buffer
			var size int
			b.SetBytes(int64(len(m.data)))
			b.ReportAllocs()
			for b.Loop() {
				p, err := statelessMessage(&out, m.data, nil)
				if err != nil {
					b.Fatal(err)
				}
				size = len(p)
			}
			b.ReportMetric(float64(size)/float64(len(m.data)), "ratio")
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	for _, m := range benchMessages {
		for _, l := range flateLibs {
			for _, dict := range [][]byte{nil, dict32K} {
				mode := "nodict"
				if dict != nil {
					mode = "dict32K"
				}
				b.Run(fmt.Sprintf("%s/%s/%s", m.name, l.name, mode), func(b *testing.B) {
					w, err := l.newWriter(io.Discard, 1, dict)
					if err != nil {
						b.Fatal(err)
					}
					var cbuf bytes.Buffer
					payload, err := compressMessage(w, &cbuf, m.data)
					if err != nil {
						b.Fatal(err)
					}
					wire := withReadTail(payload)
					pool := sync.Pool{New: func() any { return l.newReader(bytes.NewReader(nil), nil) }}
					var in bytes.Reader
					var out bytes.Buffer
					b.SetBytes(int64(len(m.data)))
					b.ReportAllocs()
					for b.Loop() {
						fr := pool.Get().(io.ReadCloser)
						err := decompressMessage(fr, &in, wire, dict, &out)
						pool.Put(fr)
						if err != nil {
							b.Fatal(err)
						}
					}
					if !bytes.Equal(out.Bytes(), m.data) {
						b.Fatalf("inflated %d bytes, want the %d sent", out.Len(), len(m.data))
					}
				})
			}
		}
	}
}

// liveHeapPer returns the live heap, in bytes, that each of n objects made by mk keeps.
func liveHeapPer(n int, mk func() any) float64 {
	objs := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range objs {
		objs[i] = mk()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(objs)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
}

// BenchmarkMemory reports what one connection's writer or reader keeps alive after it has handled one
// 1 KiB message (some encoders allocate lazily on first use). Run with -benchtime=3x.
func BenchmarkMemory(b *testing.B) {
	const n = 100
	msg := benchMessages[1].data
	for _, l := range flateLibs {
		for _, level := range []int{1, 6} {
			b.Run(fmt.Sprintf("writer/%s/level%d", l.name, level), func(b *testing.B) {
				var per float64
				for b.Loop() {
					per = liveHeapPer(n, func() any {
						w, err := l.newWriter(io.Discard, level, nil)
						if err != nil {
							panic(err)
						}
						var out bytes.Buffer
						if _, err := compressMessage(w, &out, msg); err != nil {
							panic(err)
						}
						w.Reset(io.Discard)
						return w
					})
				}
				b.ReportMetric(per, "B/writer")
			})
		}
		b.Run("reader/"+l.name, func(b *testing.B) {
			w, _ := l.newWriter(io.Discard, 1, nil)
			var cbuf bytes.Buffer
			payload, err := compressMessage(w, &cbuf, msg)
			if err != nil {
				b.Fatal(err)
			}
			wire := withReadTail(payload)
			var per float64
			for b.Loop() {
				per = liveHeapPer(n, func() any {
					fr := l.newReader(bytes.NewReader(nil), nil)
					var out bytes.Buffer
					if err := decompressMessage(fr, new(bytes.Reader), wire, nil, &out); err != nil {
						panic(err)
					}
					return fr
				})
			}
			b.ReportMetric(per, "B/reader")
		})
	}
}

// BenchmarkCompressTakeover is context takeover (RFC 7692 §7.1.1): one writer per connection, never reset,
// each message written and flushed. Distinct messages rotate, at least 64 KiB of them, so that no message
// is still in the 32 KiB window when it comes round again: repeats would flatter the ratio.
func BenchmarkCompressTakeover(b *testing.B) {
	for _, m := range benchMessages {
		msgs := make([][]byte, max(4, (64<<10)/len(m.data)+1))
		for i := range msgs {
			if strings.HasPrefix(m.name, "log") {
				msgs[i] = logText(len(m.data), uint64(100+i))
			} else {
				msgs[i] = chatJSON(len(m.data), uint64(100+i))
			}
		}
		for _, l := range flateLibs {
			for _, level := range []int{1, 6} {
				b.Run(fmt.Sprintf("%s/%s/level%d", m.name, l.name, level), func(b *testing.B) {
					var out bytes.Buffer
					w, err := l.newWriter(&out, level, nil)
					if err != nil {
						b.Fatal(err)
					}
					var in, size int64
					b.SetBytes(int64(len(m.data)))
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						msg := msgs[i%len(msgs)]
						i++
						out.Reset()
						if _, err := w.Write(msg); err != nil {
							b.Fatal(err)
						}
						if err := w.Flush(); err != nil {
							b.Fatal(err)
						}
						p, err := stripTail(out.Bytes())
						if err != nil {
							b.Fatal(err)
						}
						in += int64(len(msg))
						size += int64(len(p))
					}
					b.ReportMetric(float64(size)/float64(in), "ratio")
				})
			}
		}
	}
}
