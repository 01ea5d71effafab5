package websocket

import (
	"errors"
)

const (
	minCompressionLevel     = -2 // flate.HuffmanOnly
	maxCompressionLevel     = 9  // flate.BestCompression
	defaultCompressionLevel = 1  // flate.BestSpeed
)

// EnableWriteCompression enables and disables write compression of
// subsequent text and binary messages. This function is a noop if
// compression was not negotiated with the peer.
func (c *Conn) EnableWriteCompression(enable bool) {
	c.compressWrite.Store(enable)
}

// SetCompressionLevel sets the flate compression level for subsequent text
// and binary messages. This function is a noop if compression was not
// negotiated with the peer. See the compress/flate package for a
// description of compression levels.
func (c *Conn) SetCompressionLevel(level int) error {
	if level < minCompressionLevel || level > maxCompressionLevel {
		return errors.New("websocket: invalid compression level")
	}
	c.compressLevel.Store(int32(level))
	return nil
}
