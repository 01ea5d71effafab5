package cliflag

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *time.Duration, *time.Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var optional, required time.Duration
	DurationVar(fs, &optional, "interval", 30*time.Second, "ping after `duration` of silence")
	PositiveDurationVar(fs, &required, "timeout", 5*time.Second, "wait at most `duration`")
	return fs, &optional, &required
}

func TestDurationValues(t *testing.T) {
	for _, tc := range []struct {
		args              []string
		interval, timeout time.Duration
		errHas            string // "" means the parse must succeed
	}{
		{args: nil, interval: 30 * time.Second, timeout: 5 * time.Second},
		{args: []string{"-interval", "1m", "-timeout", "250ms"}, interval: time.Minute, timeout: 250 * time.Millisecond},
		{args: []string{"-interval", "off"}, interval: Off, timeout: 5 * time.Second},
		{args: []string{"-interval", "0"}, errHas: `invalid value "0" for flag -interval: 0 is not accepted: write "off" to turn it off`},
		{args: []string{"-interval", "0s"}, errHas: `write "off"`},
		{args: []string{"-interval", "-1s"}, errHas: `-interval: must be a positive duration such as 30s, or "off"`},
		{args: []string{"-interval", "soon"}, errHas: `invalid value "soon" for flag -interval: not a duration: write one with a unit, like 30s, 1m or 1h30m, or "off"`},
		{args: []string{"-timeout", "off"}, errHas: "-timeout: cannot be off: give a positive duration"},
		{args: []string{"-timeout", "0"}, errHas: "-timeout: must be a positive duration such as 5s"},
		{args: []string{"-timeout", "5"}, errHas: "not a duration: write one with a unit, like 5s"},
	} {
		fs, interval, timeout := newSet()
		err := fs.Parse(tc.args)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%q: error %v, want it to contain %q", tc.args, err, tc.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if *interval != tc.interval || *timeout != tc.timeout {
			t.Errorf("%q: interval %v, timeout %v; want %v, %v", tc.args, *interval, *timeout, tc.interval, tc.timeout)
		}
	}
}

func TestDurationHelp(t *testing.T) {
	fs, _, _ := newSet()
	fs.Set("interval", "off")
	fs.Lookup("interval").DefValue = fs.Lookup("interval").Value.String()
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.PrintDefaults()
	for _, want := range []string{
		"-interval duration\n",
		"(default off)",
		"-timeout duration\n",
		"(default 5s)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
