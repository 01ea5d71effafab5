package main

import (
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	data := string(appendPayload(nil, 7, 42, 123456789, true))
	tests := []struct {
		name string
		in   string
		want line
	}{
		{"latch message", `{"type":"message","channel":"bench:c7","offset":3,"data":` + data + `}`,
			line{kind: linePub, c: 7, s: 42, t: 123456789, w: 1}},
		{"centrifugo push", `{"push":{"channel":"bench:c7","pub":{"data":` + data + `,"info":{"user":"u1","client":"x"},"offset":3}}}`,
			line{kind: linePub, c: 7, s: 42, t: 123456789, w: 1}},
		{"latch ack", `{"type":"ack","id":"105","offset":9,"epoch":"e"}`, line{kind: lineAck, id: 105}},
		{"centrifugo reply", `{"id":105,"publish":{}}`, line{kind: lineAck, id: 105}},
		{"latch error", `{"type":"error","id":"3","code":"forbidden","message":"no"}`, line{kind: lineError, id: 3}},
		{"centrifugo error", `{"id":3,"error":{"code":103,"message":"permission denied"}}`, line{kind: lineError, id: 3}},
		{"centrifugo ping", `{}`, line{kind: linePing}},
		{"latch welcome", `{"type":"welcome","client":"1"}`, line{kind: lineOther}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLine([]byte(tt.in))
			if err != nil || got != tt.want {
				t.Fatalf("parseLine(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
	if _, err := parseLine([]byte(`{"data":{"c":1,"x":2}}`)); err == nil {
		t.Fatal("a foreign payload parsed")
	}
}

func TestForLines(t *testing.T) {
	var got []string
	_ = forLines([]byte("{\"a\":1}\n{\"b\":2}\n\n{}"), func(l []byte) error {
		got = append(got, string(l))
		return nil
	})
	if len(got) != 3 || got[0] != `{"a":1}` || got[1] != `{"b":2}` || got[2] != `{}` {
		t.Fatalf("got %q", got)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.add(int64(i) * int64(time.Microsecond))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}} {
		got := time.Duration(h.quantile(c.q))
		if d := got - c.want; d < -c.want/100 || d > c.want/100 {
			t.Errorf("q%.2f = %v, want %v ±1%%", c.q, got, c.want)
		}
	}
	if h.max.Load() != int64(10000*time.Microsecond) {
		t.Errorf("max = %v", time.Duration(h.max.Load()))
	}
	for v := uint64(0); v < 1<<20; v += 997 {
		if i := bucketOf(v); lowerBound(i) > v || lowerBound(i+1) <= v {
			t.Fatalf("bucket %d of %d spans [%d, %d)", i, v, lowerBound(i), lowerBound(i+1))
		}
	}
}

func TestNextFrame(t *testing.T) {
	f := []byte{0x81, 5, 'h', 'e', 'l', 'l', 'o', 0x89}
	p, op, fin, size, err := nextFrame(f)
	if err != nil || string(p) != "hello" || op != 1 || !fin || size != 7 {
		t.Fatalf("got %q %d %v %d %v", p, op, fin, size, err)
	}
	if _, _, _, size, _ := nextFrame(f[:5]); size != 0 {
		t.Fatal("incomplete frame reported whole")
	}
	long := append([]byte{0x82, 126, 0x01, 0x00}, make([]byte, 256)...)
	if _, _, _, size, _ := nextFrame(long); size != 260 {
		t.Fatalf("16-bit length: size %d", size)
	}
	if _, _, _, _, err := nextFrame([]byte{0x81, 0x85, 0, 0, 0, 0, 'x'}); err == nil {
		t.Fatal("masked server frame accepted")
	}
}
