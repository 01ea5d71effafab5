package nats

import (
	"errors"
	"strings"
	"testing"

	"github.com/latchws/latch/broker"
)

// decodeSubject inverts Subject; the tests use it to show the encoding is
// injective (a left inverse exists).
func decodeSubject(subj string) (string, bool) {
	tok, ok := strings.CutPrefix(subj, SubjectPrefix)
	if !ok || tok == "" {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(tok) {
			return "", false
		}
		i++
		switch tok[i] {
		case '_':
			b.WriteByte('_')
		case 'd':
			b.WriteByte('.')
		case 'c':
			b.WriteByte(':')
		case 'h':
			b.WriteByte('#')
		default:
			return "", false
		}
	}
	return b.String(), true
}

// checkSubject asserts the shape NATS needs: the prefix tokens plus exactly
// one token, no wildcard, no whitespace, only A-Z a-z 0-9 _ -.
func checkSubject(t testing.TB, channel, subj string) {
	t.Helper()
	toks := strings.Split(subj, ".")
	if len(toks) != 3 || toks[0] != "latch" || toks[1] != "ch" || toks[2] == "" {
		t.Fatalf("Subject(%q) = %q: want latch.ch.<one token>", channel, subj)
	}
	for i := 0; i < len(toks[2]); i++ {
		c := toks[2][i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			t.Fatalf("Subject(%q) = %q: byte %q in token", channel, subj, c)
		}
	}
	if back, ok := decodeSubject(subj); !ok || back != channel {
		t.Fatalf("decode(Subject(%q)) = %q, %v", channel, back, ok)
	}
}

func TestSubject(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"chat":         "latch.ch.chat",
		"a.b":          "latch.ch.a_db",
		"a_db":         "latch.ch.a__db",
		"a:b":          "latch.ch.a_cb",
		"a_cb":         "latch.ch.a__cb",
		"__":           "latch.ch.____",
		"-.:_":         "latch.ch.-_d_c__",
		"...":          "latch.ch._d_d_d",
		"Room-1:x.y_z": "latch.ch.Room-1_cx_dy__z",
	}
	for ch, want := range cases {
		got, err := Subject(ch)
		if err != nil || got != want {
			t.Errorf("Subject(%q) = %q, %v; want %q", ch, got, err, want)
			continue
		}
		checkSubject(t, ch, got)
	}
	hostile := []string{"", "*", ">", "a.*", "a.>", "a b", "a\tb", "a\r\n", " a", "a\x00", "a/b", "ä", "a*b", strings.Repeat("a", broker.MaxChannelLen+1)}
	for _, ch := range hostile {
		if s, err := Subject(ch); !errors.Is(err, broker.ErrInvalidChannel) {
			t.Errorf("Subject(%q) = %q, %v; want ErrInvalidChannel", ch, s, err)
		}
	}
}

// Every name of up to 2 bytes over the whole alphabet maps to a distinct,
// well-formed subject.
func TestSubjectInjectiveExhaustive(t *testing.T) {
	t.Parallel()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:#"
	seen := make(map[string]string)
	add := func(ch string) {
		subj, err := Subject(ch)
		if err != nil {
			t.Fatalf("Subject(%q): %v", ch, err)
		}
		checkSubject(t, ch, subj)
		if prev, dup := seen[subj]; dup {
			t.Fatalf("%q and %q share subject %q", prev, ch, subj)
		}
		seen[subj] = ch
	}
	for i := range len(alphabet) {
		add(alphabet[i : i+1])
		for j := range len(alphabet) {
			add(alphabet[i:i+1] + alphabet[j:j+1])
		}
	}
	if want := len(alphabet) + len(alphabet)*len(alphabet); len(seen) != want {
		t.Fatalf("%d subjects, want %d", len(seen), want)
	}
}

func FuzzSubject(f *testing.F) {
	for _, s := range []string{"chat", "a.b", "a_db", "_", ":", "a.>", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ch string) {
		subj, err := Subject(ch)
		if !broker.ValidChannel(ch) {
			if !errors.Is(err, broker.ErrInvalidChannel) {
				t.Fatalf("Subject(%q) = %q, %v; want ErrInvalidChannel", ch, subj, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		checkSubject(t, ch, subj)
	})
}
