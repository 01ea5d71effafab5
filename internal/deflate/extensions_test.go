package deflate

import (
	"errors"
	"reflect"
	"testing"
)

func flag(name string) Param      { return Param{Name: name} }
func kv(name, value string) Param { return Param{Name: name, Value: value, HasValue: true} }

func TestParseExtensions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		values []string
		want   []Extension
	}{
		{"empty header", []string{""}, nil},
		{"no values", nil, nil},
		{"only whitespace and commas", []string{" , ,\t"}, nil},
		{"firefox", []string{"permessage-deflate"}, []Extension{{Name: "permessage-deflate"}}},
		{"chromium", []string{"permessage-deflate; client_max_window_bits"},
			[]Extension{{Name: "permessage-deflate", Params: []Param{flag("client_max_window_bits")}}}},
		{"token value", []string{"permessage-deflate; server_max_window_bits=10"},
			[]Extension{{Name: "permessage-deflate", Params: []Param{kv("server_max_window_bits", "10")}}}},
		{"quoted value", []string{`permessage-deflate; server_max_window_bits="10"`},
			[]Extension{{Name: "permessage-deflate", Params: []Param{kv("server_max_window_bits", "10")}}}},
		{"quoted value with escape", []string{`x; a="1\0"`},
			[]Extension{{Name: "x", Params: []Param{kv("a", "10")}}}},
		{"whitespace everywhere", []string{" \tpermessage-deflate \t; \tclient_max_window_bits \t= \t\"12\" \t, foo ; bar = baz "},
			[]Extension{
				{Name: "permessage-deflate", Params: []Param{kv("client_max_window_bits", "12")}},
				{Name: "foo", Params: []Param{kv("bar", "baz")}},
			}},
		{"no whitespace", []string{"a;b;c=d,e"},
			[]Extension{{Name: "a", Params: []Param{flag("b"), kv("c", "d")}}, {Name: "e"}}},
		{"case kept", []string{"PerMessage-Deflate; Server_No_Context_Takeover"},
			[]Extension{{Name: "PerMessage-Deflate", Params: []Param{flag("Server_No_Context_Takeover")}}}},
		{"empty list elements", []string{", a ,, b ,"}, []Extension{{Name: "a"}, {Name: "b"}}},
		{"several header values in order", []string{"a; x", "b", "c; y=1"},
			[]Extension{{Name: "a", Params: []Param{flag("x")}}, {Name: "b"}, {Name: "c", Params: []Param{kv("y", "1")}}}},
		{"empty value among values", []string{"a", "", "b"}, []Extension{{Name: "a"}, {Name: "b"}}},
		{"params order kept, duplicates kept", []string{"a; z; y=1; z"},
			[]Extension{{Name: "a", Params: []Param{flag("z"), kv("y", "1"), flag("z")}}}},
		{"node ws multiple offers", []string{"permessage-deflate; client_max_window_bits=10, permessage-deflate"},
			[]Extension{
				{Name: "permessage-deflate", Params: []Param{kv("client_max_window_bits", "10")}},
				{Name: "permessage-deflate"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseExtensions(tt.values)
			if err != nil {
				t.Fatalf("ParseExtensions(%q) error: %v", tt.values, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseExtensions(%q)\n got %#v\nwant %#v", tt.values, got, tt.want)
			}
		})
	}
}

func TestParseExtensionsMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
	}{
		{"leading semicolon", "; a"},
		{"empty param", "a;"},
		{"empty param between", "a;;b"},
		{"missing value", "a; b="},
		{"missing value before comma", "a; b=, c"},
		{"space inside name", "perm essage"},
		{"separator in name", "a/b"},
		{"equals on extension", "a=1"},
		{"unterminated quote", `a; b="10`},
		{"unterminated escape", `a; b="10\`},
		{"empty quoted", `a; b=""`},
		{"quoted non-token", `a; b="1 0"`},
		{"quoted separator", `a; b="x,y"`},
		{"escaped quote is not a token", `a; b="\""`},
		{"control char in quote", "a; b=\"1\x010\""},
		{"bare quote in token", `a; b=1"0"`},
		{"two values", "a; b=1=2"},
		{"non-ascii name", "perméssage"},
		{"CR in header", "a\r\n; b"},
		{"trailing garbage", "a; b=1 c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseExtensions([]string{tt.value})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseExtensions(%q) = %#v, %v; want ErrMalformed", tt.value, got, err)
			}
			if got != nil {
				t.Fatalf("ParseExtensions(%q) returned %#v with an error", tt.value, got)
			}
		})
	}
	// One bad value spoils the whole header.
	if _, err := ParseExtensions([]string{"permessage-deflate", "a;"}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad second value: err = %v, want ErrMalformed", err)
	}
}
