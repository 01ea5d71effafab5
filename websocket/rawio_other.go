//go:build !unix

package websocket

import "errors"

// Without unix descriptors, connections read through net.Conn with a
// buffer held (netread.go) and held frames wait for a blocking write.
const rawIO = false

var errNoRawIO = errors.New("websocket: raw descriptor I/O is not supported here")

func sysRead(uintptr, []byte) (int, error)  { return 0, errNoRawIO }
func sysWrite(uintptr, []byte) (int, error) { return 0, errNoRawIO }

func sysPeek(uintptr) bool { return true }
