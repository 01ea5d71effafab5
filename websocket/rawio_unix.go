//go:build unix

package websocket

import "syscall"

// Reads and writes on the descriptor, for the syscall.RawConn paths
// (netread.go, coalesce.go).
const rawIO = true

func sysRead(fd uintptr, p []byte) (int, error)  { return syscall.Read(int(fd), p) }
func sysWrite(fd uintptr, p []byte) (int, error) { return syscall.Write(int(fd), p) }

// sysPeek reports whether the socket has data (or an error) to read,
// without reading it and without waiting.
func sysPeek(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN
}
