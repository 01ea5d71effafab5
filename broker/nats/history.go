package nats

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// History subjects and streams. Namespace ns (the part of a channel name
// before its first ':', "" for none) has the stream HistoryStreamPrefix +
// token(ns) holding the subjects HistorySubjectPrefix + token(ns) + ".*";
// channel c lives on HistorySubjectPrefix + token(ns) + "." + token(c).
// token is the escaping of [Subject] ('_' → "__", '.' → "_d", ':' → "_c",
// '#' → "_h"); the default namespace's token is a lone "_", which no
// escaped name can be. A namespace token longer than 64 bytes is hashed
// in the stream name (not in the subjects), to keep within file-name
// limits.
const (
	HistorySubjectPrefix = "latch.history."
	HistoryStreamPrefix  = "LATCH_HISTORY_"
)

// Headers of a stored publication. Latch-Offset and Latch-Epoch carry the
// channel position (stream sequences are per stream, not per channel);
// Latch-Id is random per Append call, so that an Append whose
// acknowledgement was lost can recognise its own message.
const (
	hdrOffset = "Latch-Offset"
	hdrEpoch  = "Latch-Epoch"
	hdrID     = "Latch-Id"
)

const (
	appendAttempts = 50 // publishes per Append before ErrUnavailable
	maxBackoff     = 20 * time.Millisecond
	readAttempts   = 4       // restarts of a Read that saw the channel change under it
	maxCached      = 1 << 14 // channels whose tip this node remembers
	defaultTimeout = 5 * time.Second
)

// HistoryConfig configures NewHistory. The zero value is valid.
type HistoryConfig struct {
	// Replicas of each history stream (1 to 5); default 1. A NATS cluster
	// that must survive the loss of a server needs 3.
	Replicas int
	// Memory keeps the streams in memory instead of files: faster, lost
	// when the NATS servers restart.
	Memory bool
	// Timeout bounds each call whose context has no deadline; default 5s.
	Timeout time.Duration
}

// History is a [history.Store] in NATS JetStream, shared by every node
// connected to the same JetStream (account). Safe for concurrent use.
// Close does not close the NATS connection.
//
// # Streams and subjects
//
// One stream per namespace, created by the first Append in it: Top and
// Read are not told the retention, but can find a channel's stream from
// its name alone. The stream keeps MaxMsgsPerSubject = Size+1 (room for
// the epoch marker below; Read returns only the last Size offsets) and
// MaxAge = TTL, so JetStream enforces the retention per channel. When an
// Append brings a different retention for the namespace, it updates the
// stream: the last node to start appending with a new configuration
// sets it. Replicas and storage come from [HistoryConfig]. Channels are
// subjects of their namespace's stream (see [HistorySubjectPrefix]).
//
// # Offsets
//
// A channel's offset is the Latch-Offset header of its messages (stream
// sequences count the whole stream). Append reads the channel's last
// message (then remembers it, per channel, on this node) and publishes
// offset+1 with Nats-Expected-Last-Subject-Sequence set to that
// message's sequence: JetStream stores it only if the channel has not
// moved, so offsets are 1, 2, 3, ... without gap or duplicate, whichever
// node appends. A refused Append reads the last message again and
// retries, with jitter. One node's Appends to one channel take turns, so
// conflicts come only from other nodes.
//
// # Epochs
//
// The epoch is the Latch-Epoch header of every message: an Append
// continues its predecessor's epoch. A channel with no message left
// (never used, all expired by TTL, stream deleted or purged) has no
// offset to continue either: its next message starts at offset 1 in a new
// random epoch, so a client's old position can never be mistaken for a
// new one. For Top to name that epoch before it exists, Top (and Read) on
// such a channel store an empty marker message, offset 0, with the new
// epoch, under the same expectation (only the first of several nodes
// succeeds; the others read its marker): every node then reports, and
// the next Append continues, that epoch. A marker expires like any
// message: a channel silent for a whole TTL gets a new epoch, as its
// history would be gone anyway. Before a namespace's stream exists Top
// returns offset 0 and a random epoch that the first Append will not
// share (a client subscribed then is told recovered:false once).
//
// # Guarantees
//
//   - Top and Read ask the stream leader (AllowDirect is off: a replica
//     may lag), so they see every acknowledged Append.
//   - An acknowledged Append is stored on a majority of the stream's
//     replicas and survives the loss of a minority of servers.
//   - An Append whose acknowledgement was lost returns an error but is
//     never stored twice: a retry first checks whether the place after
//     its expected sequence holds its own message (the random Latch-Id).
//   - Not guaranteed: Appends to one channel from several nodes are not
//     fair (a node with a backlog can make another exhaust its retries
//     and return ErrUnavailable); a stream deleted and recreated while a
//     node runs could, in theory, let that node's remembered sequence
//     match a new message by chance.
type History struct {
	js      jetstream.JetStream // immutable
	cfg     HistoryConfig       // immutable, defaults applied
	mu      sync.Mutex
	streams map[string]*nsStream  // by namespace; guarded by mu
	chans   map[string]*chanState // by channel; guarded by mu
	closed  bool                  // guarded by mu
}

var _ history.Store = (*History)(nil)

// nsStream is the stream of one namespace as this node last saw it.
type nsStream struct {
	s jetstream.Stream
	r history.Retention // its limits
}

// chanState is what this node knows of a channel's last message; sem is
// held by the Append in progress on this node, so that one node's
// Appends to a channel do not race each other.
type chanState struct {
	sem   chan struct{}
	tip   tip  // owned by the holder of sem
	known bool // tip is worth trying; owned by the holder of sem
}

// tip is a channel's last stored message: its stream sequence (0: none)
// and position.
type tip struct {
	seq    uint64
	offset uint64
	epoch  string
}

// NewHistory returns a History over nc, which must stay open while the
// History is used. It fails if JetStream does not answer.
func NewHistory(nc *nats.Conn, cfg HistoryConfig) (*History, error) {
	if nc == nil {
		return nil, errors.New("broker/nats: nil connection")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.Replicas < 1 || cfg.Replicas > 5 || cfg.Timeout < 0 {
		return nil, errors.New("broker/nats: invalid history config")
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		return nil, fmt.Errorf("broker/nats: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		return nil, fmt.Errorf("%w: JetStream: %w", history.ErrUnavailable, err)
	}
	return &History{js: js, cfg: cfg, streams: make(map[string]*nsStream), chans: make(map[string]*chanState)}, nil
}

// Append stores encode(position) at the channel's next offset. See
// [History] for how offsets stay contiguous across nodes. Under
// contention it retries, with jitter, up to 50 times; an Append that
// gives up or loses its acknowledgement returns an error wrapping
// [history.ErrUnavailable] and may have been stored (it is not stored
// twice: a retry first looks for its own message).
func (h *History) Append(ctx context.Context, channel string, r history.Retention, encode func(history.Position) []byte) (history.Position, error) {
	if r.Size <= 0 || r.TTL <= 0 {
		return history.Position{}, fmt.Errorf("broker/nats: invalid retention %+v", r)
	}
	subj, ns, err := historySubject(channel)
	if err != nil {
		return history.Position{}, err
	}
	if err := h.check(); err != nil {
		return history.Position{}, err
	}
	ctx, cancel := h.bound(ctx)
	defer cancel()
	st, err := h.stream(ctx, ns, &r)
	if err != nil {
		return history.Position{}, err
	}
	cs := h.chanState(channel)
	select {
	case cs.sem <- struct{}{}:
	case <-ctx.Done():
		return history.Position{}, unavailable(ctx.Err())
	}
	defer func() { <-cs.sem }()

	ap := &appender{h: h, subj: subj, ns: ns, r: r, st: st, cs: cs, id: randomToken(), encode: encode}
	var lastErr error
	for attempt := 0; attempt < appendAttempts; attempt++ {
		if attempt > 0 {
			if err := sleepJitter(ctx, attempt); err != nil {
				return history.Position{}, unavailable(err)
			}
		}
		if err := h.check(); err != nil {
			return history.Position{}, err
		}
		// Each attempt gets half the timeout, so that one sent to a server
		// that died leaves time to retry through another.
		actx, acancel := context.WithTimeout(ctx, h.cfg.Timeout/2)
		pos, done, err := ap.try(actx)
		acancel()
		if done {
			return pos, err
		}
		lastErr = err
		if ctx.Err() != nil {
			return history.Position{}, unavailable(ctx.Err())
		}
	}
	return history.Position{}, unavailable(fmt.Errorf("append to %s: %w", subj, lastErr))
}

// appender is one Append call's state across its attempts.
type appender struct {
	h      *History
	subj   string
	ns     string
	r      history.Retention
	st     *nsStream
	cs     *chanState // held
	id     string     // the Latch-Id of this call's messages
	encode func(history.Position) []byte
	unsure []uint64 // expected sequences of publishes whose outcome is unknown
}

// try makes one attempt; done says the Append is over (with pos or err).
func (ap *appender) try(ctx context.Context) (pos history.Position, done bool, err error) {
	h, cs := ap.h, ap.cs
	if !cs.known {
		t, _, err := h.last(ctx, ap.st.s, ap.subj)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return ap.restream(ctx, err)
		}
		if err != nil {
			return pos, false, err
		}
		cs.tip, cs.known = t, true
	}
	// An earlier publish expecting sequence e can only have been stored as
	// the channel's first message after e.
	for i := 0; i < len(ap.unsure); i++ {
		e := ap.unsure[i]
		if cs.tip.seq <= e {
			continue // nothing after e yet: it may still land, or not
		}
		m, err := ap.st.s.GetMsg(ctx, e+1, jetstream.WithGetMsgSubject(ap.subj))
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			// Publishing again before knowing could store it twice.
			cs.known = false
			return pos, false, err
		}
		if m != nil && m.Header.Get(hdrID) == ap.id {
			p, err := position(m)
			return history.Position{Offset: p.offset, Epoch: p.epoch}, true, err
		}
		ap.unsure = append(ap.unsure[:i], ap.unsure[i+1:]...) // that place is taken: it never will
		i--
	}

	next := tip{offset: cs.tip.offset + 1, epoch: cs.tip.epoch}
	if cs.tip.seq == 0 {
		next = tip{offset: 1, epoch: randomToken()} // nothing kept: a new epoch
	}
	pos = history.Position{Offset: next.offset, Epoch: next.epoch}
	msg := &nats.Msg{Subject: ap.subj, Data: ap.encode(pos), Header: nats.Header{}}
	msg.Header.Set(hdrOffset, strconv.FormatUint(next.offset, 10))
	msg.Header.Set(hdrEpoch, next.epoch)
	msg.Header.Set(hdrID, ap.id)
	expect := cs.tip.seq
	ack, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(expect))
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		next.seq = ack.Sequence
		cs.tip = next
		return pos, true, nil
	case wrongLast(err):
		cs.known = false
		return pos, false, err
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		// Not stored: the stream is gone, or has no leader yet.
		cs.known = false
		return ap.restream(ctx, err)
	case permanent(err):
		return pos, true, fmt.Errorf("broker/nats: history append: %w", err)
	case errors.As(err, &apiErr):
		cs.known = false // refused
		return pos, false, err
	default:
		if !containsSeq(ap.unsure, expect) {
			ap.unsure = append(ap.unsure, expect) // no answer: it may be stored
		}
		cs.known = false
		return pos, false, err
	}
}

// restream finds the namespace's stream again (creating it if it was
// deleted) after cause; the sequences remembered from before mean nothing
// then.
func (ap *appender) restream(ctx context.Context, cause error) (history.Position, bool, error) {
	ap.h.mu.Lock()
	delete(ap.h.streams, ap.ns)
	ap.h.mu.Unlock()
	st, err := ap.h.stream(ctx, ap.ns, &ap.r)
	if err != nil {
		return history.Position{}, false, err
	}
	if st.s.CachedInfo().Created != ap.st.s.CachedInfo().Created {
		ap.unsure = nil
	}
	ap.st = st
	ap.cs.known = false
	return history.Position{}, false, cause
}

// Top returns the channel's last position, read from the stream leader.
// A channel with nothing kept gets a marker with a new epoch (see
// [History]); if its namespace has no stream yet (no Append ever), Top
// returns offset 0 and a random epoch that the first Append will not
// share.
func (h *History) Top(ctx context.Context, channel string) (history.Position, error) {
	subj, ns, err := historySubject(channel)
	if err != nil {
		return history.Position{}, err
	}
	if err := h.check(); err != nil {
		return history.Position{}, err
	}
	ctx, cancel := h.bound(ctx)
	defer cancel()
	st, err := h.stream(ctx, ns, nil)
	if err != nil {
		return history.Position{}, err
	}
	if st == nil {
		return history.Position{Epoch: randomToken()}, nil
	}
	t, _, err := h.top(ctx, ns, st, subj)
	if err != nil {
		return history.Position{}, err
	}
	return history.Position{Offset: t.offset, Epoch: t.epoch}, nil
}

// Read returns the publications q selects, within the channel's
// retention, and its top. It costs a few round trips to the stream
// leader to find the first wanted message (a search over stream
// sequences, usually one probe), then one per publication.
func (h *History) Read(ctx context.Context, channel string, q history.Query) ([]history.Publication, history.Position, error) {
	subj, ns, err := historySubject(channel)
	if err != nil {
		return nil, history.Position{}, err
	}
	if q.Limit < 0 {
		return nil, history.Position{}, fmt.Errorf("broker/nats: negative history limit %d", q.Limit)
	}
	if err := h.check(); err != nil {
		return nil, history.Position{}, err
	}
	ctx, cancel := h.bound(ctx)
	defer cancel()
	st, err := h.stream(ctx, ns, nil)
	if err != nil {
		return nil, history.Position{}, err
	}
	if st == nil {
		return nil, history.Position{Epoch: randomToken()}, nil
	}
	for attempt := 0; ; attempt++ {
		pubs, t, err := h.read(ctx, ns, st, subj, q)
		if !errors.Is(err, errChanged) || attempt == readAttempts-1 {
			return pubs, history.Position{Offset: t.offset, Epoch: t.epoch}, err
		}
	}
}

// errChanged means the channel's messages changed during a Read (expired,
// or a new epoch): the Read starts again.
var errChanged = errors.New("broker/nats: history changed during read")

func (h *History) read(ctx context.Context, ns string, st *nsStream, subj string, q history.Query) ([]history.Publication, tip, error) {
	t, m, err := h.top(ctx, ns, st, subj)
	if err != nil || q.Since >= t.offset {
		return nil, t, err
	}
	lo, hi := q.Since+1, t.offset
	if size := uint64(st.r.Size); size > 0 && hi > size && lo < hi-size+1 {
		lo = hi - size + 1 // MaxMsgsPerSubject is Size+1 (room for a marker)
	}
	if n := uint64(q.Limit); n > 0 && hi-lo+1 > n {
		if q.Reverse {
			lo = hi - n + 1
		} else {
			hi = lo + n - 1
		}
	}
	if lo != t.offset {
		if m, err = h.seek(ctx, st.s, subj, t, lo); err != nil {
			return nil, t, err
		}
	}
	pubs := make([]history.Publication, 0, hi-lo+1)
	for {
		p, err := position(m)
		if err != nil {
			return nil, t, err
		}
		if p.epoch != t.epoch || len(pubs) > 0 && p.offset != pubs[len(pubs)-1].Offset+1 {
			return nil, t, errChanged
		}
		pubs = append(pubs, history.Publication{Offset: p.offset, Time: m.Time, Data: m.Data})
		if p.offset >= hi {
			break
		}
		if m, err = st.s.GetMsg(ctx, m.Sequence+1, jetstream.WithGetMsgSubject(subj)); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, t, errChanged
			}
			return nil, t, unavailable(err)
		}
	}
	if q.Reverse {
		for i, j := 0, len(pubs)-1; i < j; i, j = i+1, j-1 {
			pubs[i], pubs[j] = pubs[j], pubs[i]
		}
	}
	return pubs, t, nil
}

// seek returns the channel's first message with an offset of at least
// want (want itself unless it expired), searching stream sequences up to
// top's. In one epoch offsets grow by one per message of the subject and
// sequences by at least one, which bounds where an offset can be: the
// first probe, at the highest place want can have, hits it when the
// channel's messages are adjacent in the stream.
func (h *History) seek(ctx context.Context, s jetstream.Stream, subj string, top tip, want uint64) (*jetstream.RawStreamMsg, error) {
	// Invariant: the message found from hi on has an offset >= want;
	// the ones found from below lo have offsets < want.
	if top.seq < top.offset-want {
		return nil, errChanged // cannot be: a channel's offsets never outrun sequences
	}
	lo, hi := uint64(1), top.seq-(top.offset-want)
	probe := hi
	for range 128 {
		m, err := s.GetMsg(ctx, probe, jetstream.WithGetMsgSubject(subj))
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil, errChanged
			}
			return nil, unavailable(err)
		}
		p, err := position(m)
		if err != nil {
			return nil, err
		}
		if p.epoch != top.epoch || m.Sequence > top.seq {
			return nil, errChanged
		}
		switch {
		case p.offset == want:
			return m, nil
		case p.offset > want:
			if probe == lo {
				return m, nil // want is gone; m is the first kept
			}
			hi = probe
			if d := p.offset - want; m.Sequence > d && m.Sequence-d < hi {
				hi = max(m.Sequence-d, lo)
			}
		default:
			lo = m.Sequence + (want - p.offset)
			if lo > hi {
				return nil, errChanged
			}
		}
		probe = lo + (hi-lo)/2
	}
	return nil, errChanged
}

// top returns the channel's last message, storing an epoch marker first
// if it has none.
func (h *History) top(ctx context.Context, ns string, st *nsStream, subj string) (tip, *jetstream.RawStreamMsg, error) {
	for attempt := 0; ; attempt++ {
		t, m, err := h.last(ctx, st.s, subj)
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				h.forget(ns, st)
				return tip{epoch: randomToken()}, nil, nil
			}
			return tip{}, nil, err
		}
		if t.seq != 0 {
			return t, m, nil
		}
		if attempt == appendAttempts {
			return tip{}, nil, unavailable(errors.New("epoch marker: too many conflicts"))
		}
		// Nothing kept: store the epoch the next Append will continue.
		e := randomToken()
		msg := &nats.Msg{Subject: subj, Header: nats.Header{}}
		msg.Header.Set(hdrOffset, "0")
		msg.Header.Set(hdrEpoch, e)
		ack, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(0))
		switch {
		case err == nil:
			return tip{seq: ack.Sequence, epoch: e}, nil, nil
		case wrongLast(err):
			continue // someone else wrote first: read theirs
		case errors.Is(err, jetstream.ErrNoStreamResponse):
			// The leader answered a moment ago: it is probably being
			// replaced. The caller may try again.
			return tip{}, nil, unavailable(err)
		default:
			// Unsure whether it is stored; reading again tells.
			if ctx.Err() != nil {
				return tip{}, nil, unavailable(ctx.Err())
			}
			if err := sleepJitter(ctx, attempt+1); err != nil {
				return tip{}, nil, unavailable(err)
			}
		}
	}
}

// last reads the channel's last message from the stream leader (so it is
// never older than an acknowledged Append); seq 0 means none.
func (h *History) last(ctx context.Context, s jetstream.Stream, subj string) (tip, *jetstream.RawStreamMsg, error) {
	m, err := s.GetLastMsgForSubject(ctx, subj)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return tip{}, nil, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return tip{}, nil, err
	case err != nil:
		return tip{}, nil, unavailable(err)
	}
	t, err := position(m)
	return t, m, err
}

// position reads a stored message's place.
func position(m *jetstream.RawStreamMsg) (tip, error) {
	off, err := strconv.ParseUint(m.Header.Get(hdrOffset), 10, 64)
	e := m.Header.Get(hdrEpoch)
	if err != nil || e == "" {
		return tip{}, fmt.Errorf("broker/nats: message %d on %s is not a latch publication", m.Sequence, m.Subject)
	}
	return tip{seq: m.Sequence, offset: off, epoch: e}, nil
}

// stream returns the namespace's stream. With r (Append) it creates the
// stream, or updates its limits to r; without (Top, Read) it returns nil
// when there is none.
func (h *History) stream(ctx context.Context, ns string, r *history.Retention) (*nsStream, error) {
	h.mu.Lock()
	e := h.streams[ns]
	h.mu.Unlock()
	if e != nil && (r == nil || e.r == *r) {
		return e, nil
	}
	name := historyStreamName(ns)
	for range 3 {
		s, err := h.js.Stream(ctx, name)
		switch {
		case err == nil:
			cfg := s.CachedInfo().Config
			cur := retentionOf(cfg)
			if r != nil && cur != *r {
				// The namespace's retention changed: the last node to
				// append with a new one sets it.
				cfg.MaxMsgsPerSubject = int64(r.Size) + 1
				cfg.MaxAge = r.TTL
				cfg.Duplicates = min(cfg.Duplicates, r.TTL)
				if s, err = h.js.UpdateStream(ctx, cfg); err != nil {
					return nil, unavailable(fmt.Errorf("update stream %s: %w", name, err))
				}
				cur = *r
			}
			e = &nsStream{s: s, r: cur}
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if r == nil {
				return nil, nil
			}
			s, err = h.js.CreateStream(ctx, h.streamConfig(name, ns, *r))
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another node won: use its stream
			}
			if err != nil {
				return nil, unavailable(fmt.Errorf("create stream %s: %w", name, err))
			}
			e = &nsStream{s: s, r: *r}
		default:
			return nil, unavailable(fmt.Errorf("stream %s: %w", name, err))
		}
		h.mu.Lock()
		h.streams[ns] = e
		h.mu.Unlock()
		return e, nil
	}
	return nil, unavailable(fmt.Errorf("stream %s: created and deleted concurrently", name))
}

func (h *History) forget(ns string, st *nsStream) {
	h.mu.Lock()
	if h.streams[ns] == st {
		delete(h.streams, ns)
	}
	h.mu.Unlock()
}

func (h *History) streamConfig(name, ns string, r history.Retention) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if h.cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:        name,
		Description: fmt.Sprintf("latch history of namespace %q", ns),
		Subjects:    []string{HistorySubjectPrefix + namespaceToken(ns) + ".*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		// One more than Size: the epoch marker can take a place; Read
		// returns only the last Size offsets.
		MaxMsgsPerSubject: int64(r.Size) + 1,
		MaxAge:            r.TTL,
		Duplicates:        min(r.TTL, 2*time.Minute), // unused (no Nats-Msg-Id), must not exceed MaxAge
		Storage:           storage,
		Replicas:          h.cfg.Replicas,
		// Direct gets may be answered by a lagging replica: Top and Read
		// must see every acknowledged Append, so they ask the leader.
		AllowDirect: false,
	}
}

func retentionOf(cfg jetstream.StreamConfig) history.Retention {
	return history.Retention{Size: int(cfg.MaxMsgsPerSubject - 1), TTL: cfg.MaxAge}
}

// chanState returns the channel's state, remembering at most maxCached
// channels (forgetting one costs a read on its next Append).
func (h *History) chanState(channel string) *chanState {
	h.mu.Lock()
	defer h.mu.Unlock()
	cs := h.chans[channel]
	if cs == nil {
		if len(h.chans) >= maxCached {
			for k := range h.chans {
				delete(h.chans, k)
				break
			}
		}
		cs = &chanState{sem: make(chan struct{}, 1)}
		h.chans[channel] = cs
	}
	return cs
}

// Close makes every later call fail with [history.ErrClosed]. It does
// not close the NATS connection.
func (h *History) Close() error {
	h.mu.Lock()
	h.closed = true
	h.chans = make(map[string]*chanState)
	h.mu.Unlock()
	return nil
}

func (h *History) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return history.ErrClosed
	}
	return nil
}

// bound gives ctx the configured timeout when it has no deadline.
func (h *History) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, h.cfg.Timeout)
}

func unavailable(err error) error {
	if errors.Is(err, history.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", history.ErrUnavailable, err)
}

// wrongLast reports the JetStream refusal of an expected last subject
// sequence (10164 is its form on replicated streams).
func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

func containsSeq(s []uint64, v uint64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// sleepJitter waits a random time up to 2^attempt ms (at most maxBackoff),
// so that nodes that collided do not collide again in lockstep.
func sleepJitter(ctx context.Context, attempt int) error {
	d := min(time.Millisecond<<min(attempt, 10), maxBackoff)
	t := time.NewTimer(rand.N(d) + time.Millisecond/10)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// randomToken returns a random epoch or Append id: 64 bits in base 36.
func randomToken() string { return strconv.FormatUint(rand.Uint64(), 36) }

// historySubject returns the channel's history subject and namespace.
func historySubject(channel string) (subj, ns string, err error) {
	tok, err := channelToken(channel)
	if err != nil {
		return "", "", err
	}
	ns, _, _ = strings.Cut(channel, ":")
	if ns == channel {
		ns = ""
	}
	return HistorySubjectPrefix + namespaceToken(ns) + "." + tok, ns, nil
}

func namespaceToken(ns string) string {
	if ns == "" {
		return "_"
	}
	var b strings.Builder
	escapeName(&b, ns)
	return b.String()
}

// historyStreamName is the stream of namespace ns.
func historyStreamName(ns string) string {
	tok := namespaceToken(ns)
	if len(tok) > 64 {
		// A trailing lone '_' ends no escaped name: no clash with a
		// short namespace's token.
		tok = fmt.Sprintf("%x_", fnv128(tok))
	}
	return HistoryStreamPrefix + tok
}

// fnv128 is FNV-1a, 128 bits (as two halves), of s.
func fnv128(s string) [16]byte {
	var out [16]byte
	for half := range 2 {
		h := uint64(14695981039346656037) ^ uint64(half)
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
		for i := range 8 {
			out[half*8+i] = byte(h >> (8 * i))
		}
	}
	return out
}

// channelToken is the channel's name as one subject token, escaped as
// [Subject] escapes it.
func channelToken(channel string) (string, error) {
	if err := broker.CheckChannel(channel); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(2 * len(channel))
	escapeName(&b, channel)
	return b.String(), nil
}
