package frame

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"
)

func TestValidReceivedCode(t *testing.T) {
	valid := map[uint16]bool{}
	for c := 1000; c <= 1003; c++ {
		valid[uint16(c)] = true
	}
	for c := 1007; c <= 1014; c++ {
		valid[uint16(c)] = true
	}
	for c := 3000; c <= 4999; c++ {
		valid[uint16(c)] = true
	}
	for c := 0; c <= 0xFFFF; c++ {
		if got := ValidReceivedCode(uint16(c)); got != valid[uint16(c)] {
			t.Errorf("ValidReceivedCode(%d) = %v", c, got)
		}
	}
}

func TestParseClose(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		code    uint16
		reason  string
		errCode uint16
	}{
		{"empty", nil, CloseNoStatus, "", 0},
		{"code only", []byte{0x03, 0xe8}, CloseNormal, "", 0},
		{"code and reason", []byte{0x03, 0xe9, 'b', 'y', 'e'}, CloseGoingAway, "bye", 0},
		{"utf8 reason", append([]byte{0x0f, 0xa0}, "κόσμε"...), 4000, "κόσμε", 0},
		{"1014", []byte{0x03, 0xf6}, 1014, "", 0},
		{"one byte", []byte{0x03}, 0, "", CloseProtocolError},
		{"code 0", []byte{0, 0}, 0, "", CloseProtocolError},
		{"code 999", []byte{0x03, 0xe7}, 0, "", CloseProtocolError},
		{"code 1004", []byte{0x03, 0xec}, 0, "", CloseProtocolError},
		{"code 1005", []byte{0x03, 0xed}, 0, "", CloseProtocolError},
		{"code 1006", []byte{0x03, 0xee}, 0, "", CloseProtocolError},
		{"code 1015", []byte{0x03, 0xf7}, 0, "", CloseProtocolError},
		{"code 1016", []byte{0x03, 0xf8}, 0, "", CloseProtocolError},
		{"code 2999", []byte{0x0b, 0xb7}, 0, "", CloseProtocolError},
		{"code 5000", []byte{0x13, 0x88}, 0, "", CloseProtocolError},
		{"code 65535", []byte{0xff, 0xff}, 0, "", CloseProtocolError},
		{"bad utf8", []byte{0x03, 0xe8, 0xce, 0xba, 0xed, 0xa0, 0x80}, 0, "", CloseInvalidPayload},
		{"cut utf8", []byte{0x03, 0xe8, 'o', 'k', 0xe2, 0x82}, 0, "", CloseInvalidPayload},
		{"bad code wins over bad utf8", []byte{0x03, 0xed, 0xff}, 0, "", CloseProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := ParseClose(tt.in)
			if tt.errCode != 0 {
				var fe *Error
				if !errors.As(err, &fe) || fe.Code != tt.errCode {
					t.Fatalf("err = %v, want *Error with code %d", err, tt.errCode)
				}
				return
			}
			if err != nil || code != tt.code || reason != tt.reason {
				t.Fatalf("= %d, %q, %v; want %d, %q", code, reason, err, tt.code, tt.reason)
			}
		})
	}
}

func TestAppendClose(t *testing.T) {
	if got := AppendClose([]byte("x"), CloseNoStatus, "ignored"); !bytes.Equal(got, []byte("x")) {
		t.Fatalf("CloseNoStatus appended % x", got)
	}
	got := AppendClose(nil, CloseGoingAway, "bye")
	if want := []byte{0x03, 0xe9, 'b', 'y', 'e'}; !bytes.Equal(got, want) {
		t.Fatalf("AppendClose = % x, want % x", got, want)
	}
	code, reason, err := ParseClose(got)
	if err != nil || code != CloseGoingAway || reason != "bye" {
		t.Fatalf("round trip = %d, %q, %v", code, reason, err)
	}
}

func FuzzParseClose(f *testing.F) {
	f.Add([]byte{0x03, 0xe8, 'o', 'k'})
	f.Add([]byte{0x03})
	f.Add([]byte{0x03, 0xe8, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClose(p)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not *Error", err)
			}
			switch {
			case len(p) == 1 || (len(p) >= 2 && !ValidReceivedCode(uint16(p[0])<<8|uint16(p[1]))):
				if fe.Code != CloseProtocolError {
					t.Fatalf("code %d, want 1002", fe.Code)
				}
			case len(p) >= 2 && !utf8.Valid(p[2:]):
				if fe.Code != CloseInvalidPayload {
					t.Fatalf("code %d, want 1007", fe.Code)
				}
			default:
				t.Fatalf("unexpected error %v for % x", err, p)
			}
			return
		}
		if len(p) == 0 {
			if code != CloseNoStatus || reason != "" {
				t.Fatalf("empty payload = %d, %q", code, reason)
			}
			return
		}
		if !ValidReceivedCode(code) || !utf8.ValidString(reason) {
			t.Fatalf("accepted invalid close %d %q", code, reason)
		}
		if again := AppendClose(nil, code, reason); !bytes.Equal(again, p) {
			t.Fatalf("AppendClose(ParseClose(% x)) = % x", p, again)
		}
	})
}
