package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the server's private Prometheus registry. Connection and
// message counters live in the hub, broker counters in the broker; both are
// read at scrape time (hubCollector, brokerCollector). The protocol's own
// counters and the fan-out histograms live here.
type metrics struct {
	registry    *prometheus.Registry
	fanout      prometheus.Histogram
	recipients  prometheus.Histogram
	publishes   prometheus.Counter
	protoErrors *prometheus.CounterVec
	compressed  *prometheus.CounterVec
	http2       *prometheus.CounterVec
	authFails   *prometheus.CounterVec
	recoveries  *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	gapFills    prometheus.Counter
	gapsLost    prometheus.Counter
	apiRequests *prometheus.CounterVec
	refused     atomic.Uint64 // connections answered 503 at accept, for want of descriptors
	badTokens   atomic.Uint64 // upgrades answered 401 for their token, before the hub
}

// Route labels of latch_compressed_connections_total.
const (
	routeWS   = "/ws"
	routeEcho = "/echo"
)

func newMetrics(h, echo *hub.Hub, b broker.Broker, in *broker.Interest) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "latch_fanout_duration_seconds",
			Help: "Time to hand one message to the queue of every local subscriber (once per message and node).",
			// Queueing is in-memory: microseconds, up to ~10 ms under load.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		recipients: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "latch_fanout_recipients",
			Help:    "Number of local subscribers each message was queued for (once per message and node).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_publishes_total",
			Help: "Publish requests accepted by the broker (acknowledged unless the server began shutting down).",
		}),
		protoErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_protocol_errors_total",
			Help: "Error messages sent to clients, by error code.",
		}, []string{"code"}),
	}
	m.compressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_compressed_connections_total",
		Help: "WebSocket connections that negotiated permessage-deflate (RFC 7692), by route.",
	}, []string{"route"})
	m.compressed.WithLabelValues(routeWS)
	m.compressed.WithLabelValues(routeEcho)
	m.http2 = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_http2_connections_total",
		Help: "WebSocket connections opened as streams of an HTTP/2 connection (RFC 8441 extended CONNECT), by route.",
	}, []string{"route"})
	m.http2.WithLabelValues(routeWS)
	m.http2.WithLabelValues(routeEcho)
	for _, code := range errorCodes {
		m.protoErrors.WithLabelValues(code) // export zeros
	}
	m.authFails = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_auth_failures_total",
		Help: "Connection tokens refused (at the upgrade, in connect or refresh), by reason.",
	}, []string{"reason"})
	for _, r := range authReasons {
		m.authFails.WithLabelValues(r)
	}
	m.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_recoveries_total",
		Help: "Subscribes that asked to recover from a position, by result (recovered: every missed publication sent).",
	}, []string{"result"})
	m.recoveries.WithLabelValues("recovered")
	m.recoveries.WithLabelValues("not_recovered")
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_rate_limited_total",
		Help: "Requests refused with rate_limited, by the bound that refused them: publishes per connection or per IP, subscribes and unsubscribes in join/leave namespaces.",
	}, []string{"scope"})
	m.rateLimited.WithLabelValues("connection")
	m.rateLimited.WithLabelValues("ip")
	m.rateLimited.WithLabelValues("join_leave")
	m.gapFills = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "latch_history_gap_fills_total",
		Help: "Publications this node fanned out from history because the broker had not brought them (yet) in order.",
	})
	m.gapsLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "latch_history_gaps_lost_total",
		Help: "Publications neither the broker nor the history could give this node (expired before it caught up).",
	})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_api_requests_total",
		Help: "Server API requests, by method and HTTP status.",
	}, []string{"method", "status"})
	m.registry.MustRegister(
		m.authFails, m.recoveries, m.rateLimited, m.gapFills, m.gapsLost, m.apiRequests,
		m.fanout, m.recipients, m.publishes, m.protoErrors, m.compressed, m.http2,
		&hubCollector{hub: h, echo: echo, refused: &m.refused, badTokens: &m.badTokens},
		&brokerCollector{broker: b, interest: in},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *metrics) published() { m.publishes.Inc() }

func (m *metrics) refusedForDescriptors() { m.refused.Add(1) }

func (m *metrics) observeFanout(d time.Duration, recipients int) {
	m.fanout.Observe(d.Seconds())
	m.recipients.Observe(float64(recipients))
}

// connected counts a new connection on route if it compresses and if it
// is an HTTP/2 stream.
func (m *metrics) connected(route string, conn *websocket.Conn, r *http.Request) {
	if conn.Compressed() {
		m.compressed.WithLabelValues(route).Inc()
	}
	if r.ProtoMajor >= 2 {
		m.http2.WithLabelValues(route).Inc()
	}
}

func (m *metrics) authFailure(reason string) { m.authFails.WithLabelValues(reason).Inc() }

func (m *metrics) recovery(ok bool) {
	if ok {
		m.recoveries.WithLabelValues("recovered").Inc()
	} else {
		m.recoveries.WithLabelValues("not_recovered").Inc()
	}
}

func (m *metrics) protocolError(code string) {
	m.protoErrors.WithLabelValues(code).Inc()
}

// Rejection reasons the hub reports; listed so they show as zero before
// the first rejection.
var rejectReasons = []string{"max_connections", "per_ip", "draining", "unauthorized", "handshake"}

var (
	descConnections = prometheus.NewDesc("latch_connections",
		"Open WebSocket connections.", nil, nil)
	descConnected = prometheus.NewDesc("latch_connections_accepted_total",
		"WebSocket connections accepted.", nil, nil)
	descDisconnected = prometheus.NewDesc("latch_connections_ended_total",
		"WebSocket connections ended.", nil, nil)
	descRejected = prometheus.NewDesc("latch_upgrades_rejected_total",
		"WebSocket upgrades refused on /ws and /echo, by reason (descriptors: connections answered 503 at accept).", []string{"reason"}, nil)
	descMessagesIn = prometheus.NewDesc("latch_messages_received_total",
		"Data messages received from clients.", nil, nil)
	descBytesIn = prometheus.NewDesc("latch_received_bytes_total",
		"Payload bytes of data messages received from clients.", nil, nil)
	descMessagesOut = prometheus.NewDesc("latch_messages_sent_total",
		"Data messages written to clients.", nil, nil)
	descBytesOut = prometheus.NewDesc("latch_sent_bytes_total",
		"Payload bytes of data messages written to clients.", nil, nil)
	descDropped = prometheus.NewDesc("latch_queue_dropped_total",
		"Messages dropped from full send queues.", nil, nil)
	descSlow = prometheus.NewDesc("latch_slow_consumer_disconnects_total",
		"Clients ended as slow consumers (full queue or a write timeout): sent close 1008, or dropped when stuck mid-frame; counted as 1008 in latch_close_codes_total.", nil, nil)
	descThrottled = prometheus.NewDesc("latch_throttled_messages_total",
		"Times the server waited before reading a client's next message because it sent faster than -max-message-rate.", nil, nil)
	descDiscarded = prometheus.NewDesc("latch_queue_discarded_total",
		"Messages still queued for a client when it ended.", nil, nil)
	descCloseCodes = prometheus.NewDesc("latch_close_codes_total",
		"Connections ended, by close code: the client's, or the one the server ended it with (1008, 1009); 1006: none.", []string{"code"}, nil)
)

// hubCollector exports hub.Stats at scrape time, so the hub needs no
// dependency on Prometheus and the counters are never double-kept. The
// server's own refusals at accept join the hub's rejections as reason
// "descriptors".
type hubCollector struct {
	hub       *hub.Hub       // /ws
	echo      *hub.Hub       // /echo: its connections and refusals are added to /ws's
	refused   *atomic.Uint64 // connections answered 503 at accept
	badTokens *atomic.Uint64 // upgrades answered 401 before the hub: "unauthorized" too
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descConnected, descDisconnected, descRejected,
		descMessagesIn, descBytesIn, descMessagesOut, descBytesOut, descDropped, descSlow, descDiscarded, descThrottled,
		descCloseCodes} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.hub.Stats()
	if c.echo != nil {
		e := c.echo.Stats()
		s.Connections += e.Connections
		s.Connected += e.Connected
		s.Disconnected += e.Disconnected
		for r, n := range e.Rejected {
			s.Rejected[r] += n
		}
		for code, n := range e.CloseCodes {
			s.CloseCodes[code] += n
		}
		s.SlowDisconnects += e.SlowDisconnects
	}
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnections, s.Connections)
	counter(descConnected, s.Connected)
	counter(descDisconnected, s.Disconnected)
	s.Rejected["unauthorized"] += c.badTokens.Load()
	for _, r := range rejectReasons {
		counter(descRejected, s.Rejected[r], r)
	}
	counter(descRejected, c.refused.Load(), "descriptors")
	for r, n := range s.Rejected {
		if !knownReason(r) && r != "descriptors" {
			counter(descRejected, n, r)
		}
	}
	counter(descMessagesIn, s.MessagesIn)
	counter(descBytesIn, s.BytesIn)
	counter(descMessagesOut, s.MessagesOut)
	counter(descBytesOut, s.BytesOut)
	counter(descDropped, s.Dropped)
	counter(descSlow, s.SlowDisconnects)
	counter(descDiscarded, s.Discarded)
	counter(descThrottled, s.Throttled)
	for code, n := range s.CloseCodes {
		counter(descCloseCodes, n, strconv.Itoa(code))
	}
}

func knownReason(r string) bool {
	for _, k := range rejectReasons {
		if r == k {
			return true
		}
	}
	return false
}

var (
	descBrokerOut = prometheus.NewDesc("latch_broker_published_total",
		"Messages the broker accepted from this node (publishes acknowledged by NATS).", nil, nil)
	descBrokerIn = prometheus.NewDesc("latch_broker_received_total",
		"Messages the broker delivered to this node for local fan-out.", nil, nil)
	descBrokerErrors = prometheus.NewDesc("latch_broker_publish_errors_total",
		"Publishes the broker did not accept; the client got an error.", nil, nil)
	descBrokerReconnects = prometheus.NewDesc("latch_broker_reconnects_total",
		"Reconnections to the broker backend (NATS).", nil, nil)
	descBrokerDropped = prometheus.NewDesc("latch_broker_dropped_total",
		"Messages for this node the broker discarded because local fan-out fell behind.", nil, nil)
	descBrokerConnected = prometheus.NewDesc("latch_broker_connected",
		"1 while connected to the broker backend, 0 otherwise.", nil, nil)
	descBrokerDown = prometheus.NewDesc("latch_broker_disconnected_seconds_total",
		"Time spent without a broker backend connection, the current outage included.", nil, nil)
	descBrokerChannels = prometheus.NewDesc("latch_broker_channels",
		"Channels this node is subscribed to at the broker (channels with local subscribers).", nil, nil)
)

// brokerCollector exports broker.Stats at scrape time.
type brokerCollector struct {
	broker   broker.Broker
	interest *broker.Interest
}

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBrokerOut, descBrokerIn, descBrokerErrors, descBrokerReconnects,
		descBrokerDropped, descBrokerConnected, descBrokerDown, descBrokerChannels} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.broker.Stats()
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	counter(descBrokerOut, float64(s.Published))
	counter(descBrokerIn, float64(s.Received))
	counter(descBrokerErrors, float64(s.PublishErrors))
	counter(descBrokerReconnects, float64(s.Reconnects))
	counter(descBrokerDropped, float64(s.Dropped))
	counter(descBrokerDown, s.Disconnected.Seconds())
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descBrokerConnected, prometheus.GaugeValue, connected)
	ch <- prometheus.MustNewConstMetric(descBrokerChannels, prometheus.GaugeValue, float64(c.interest.Len()))
}
