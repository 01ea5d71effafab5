package websocket

// BufferPool represents a pool of buffers. The *sync.Pool type satisfies
// this interface. The type of the value stored in a pool is not specified.
type BufferPool interface {
	// Get gets a value from the pool or returns nil if the pool is empty.
	Get() interface{}
	// Put adds a value to the pool.
	Put(interface{})
}
