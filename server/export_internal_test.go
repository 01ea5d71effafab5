package server

import "time"

// The package's tests count their fake brokers' publishes: node reports,
// every 5 s, would add to them at random. e2e runs real clusters.
func init() {
	nodeInterval = time.Hour
	nodeExpiry = 3 * nodeInterval
}
