// Package cliflag holds the flag types shared by the latch commands.
//
// Durations on latch's command line have one spelling for "no bound": the
// word off. A zero duration is refused rather than read as "off" or as "the
// default": server.Config gives 0 the meaning "default" (Go's zero-value
// convention for config structs), and a flag must not silently mean the
// opposite.
package cliflag

import (
	"errors"
	"flag"
	"time"
)

// Off is the value a duration flag stores for the word off: negative, as
// server.Config spells "no bound".
const Off time.Duration = -1

// duration is a flag.Value for a positive duration or, when offOK, the
// word off.
type duration struct {
	p     *time.Duration
	offOK bool
}

func (d duration) String() string {
	if d.p == nil {
		return "0s"
	}
	if *d.p < 0 {
		return "off"
	}
	return d.p.String()
}

func (d duration) Get() any { return *d.p }

// Errors returned by Set; flag.FlagSet prefixes them with the flag's name.
var (
	errZeroOff     = errors.New(`0 is not accepted: write "off" to turn it off, or a positive duration such as 30s`)
	errZero        = errors.New("must be a positive duration such as 5s")
	errNegativeOff = errors.New(`must be a positive duration such as 30s, or "off"`)
	errNoOff       = errors.New(`cannot be off: give a positive duration such as 5s`)
)

func (d duration) Set(s string) error {
	if s == "off" {
		if !d.offOK {
			return errNoOff
		}
		*d.p = Off
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		if d.offOK {
			return errors.New(`not a duration: write one with a unit, like 30s, 1m or 1h30m, or "off"`)
		}
		return errors.New("not a duration: write one with a unit, like 5s, 1m or 1h30m")
	}
	switch {
	case v == 0 && d.offOK:
		return errZeroOff
	case v < 0 && d.offOK:
		return errNegativeOff
	case v <= 0:
		return errZero
	}
	*d.p = v
	return nil
}

// DurationVar defines a duration flag that takes a positive Go duration or
// the word off, which stores [Off].
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(duration{p: p, offOK: true}, name, usage)
}

// PositiveDurationVar defines a duration flag that must be positive: for
// bounds that cannot be turned off.
func PositiveDurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(duration{p: p}, name, usage)
}
