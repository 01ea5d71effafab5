package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/latchws/latch/history"
)

// maxAPIBody bounds a server API request body.
const maxAPIBody = 1 << 20

// maxBroadcastChannels bounds the channels of one broadcast.
const maxBroadcastChannels = 1000

// api serves the server API: POST /api/<method> with a JSON body, answered
// with JSON (docs/api.md).
type api struct {
	p         *pubsub
	key       []byte
	startedAt time.Time
}

// apiError is the body of every failed API request.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.message }

func badRequest(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "bad_request", msg}
}

// apiMethods names the server API's methods; docs/api.md and
// docs/openapi.yaml describe each (a test checks).
var apiMethods = []string{"publish", "broadcast", "disconnect", "unsubscribe", "presence", "presence_stats", "history", "channels", "info"}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	methods := map[string]func(context.Context, json.RawMessage) (any, *apiError){
		"publish":        a.publish,
		"broadcast":      a.broadcast,
		"disconnect":     a.disconnect,
		"unsubscribe":    a.unsubscribe,
		"presence":       a.presence,
		"presence_stats": a.presenceStats,
		"history":        a.history,
		"channels":       a.channels,
		"info":           a.info,
	}
	if len(methods) != len(apiMethods) {
		panic("server: apiMethods and the API's handlers differ") // caught by every test of the API
	}
	for _, name := range apiMethods {
		fn := methods[name]
		if fn == nil {
			panic("server: no handler for API method " + name)
		}
		mux.HandleFunc("/api/"+name, func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, name, fn) })
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		a.write(w, "unknown", nil, &apiError{http.StatusNotFound, "not_found", "no API method " + strconv.Quote(strings.TrimPrefix(r.URL.Path, "/api/"))})
	})
	return mux
}

// authorized checks the API key: "Authorization: apikey KEY" (or Bearer)
// or "X-API-Key: KEY", compared in constant time.
func (a *api) authorized(r *http.Request) bool {
	key := r.Header.Get("X-API-Key")
	if h := r.Header.Get("Authorization"); key == "" && h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "apikey") || strings.EqualFold(scheme, "bearer") {
			key = strings.TrimSpace(rest)
		}
	}
	return key != "" && subtle.ConstantTimeCompare([]byte(key), a.key) == 1
}

func (a *api) serve(w http.ResponseWriter, r *http.Request, name string, fn func(context.Context, json.RawMessage) (any, *apiError)) {
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `apikey realm="latch"`)
		a.write(w, name, nil, &apiError{http.StatusUnauthorized, "unauthorized", "missing or wrong API key"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		a.write(w, name, nil, &apiError{http.StatusMethodNotAllowed, "method_not_allowed", "use POST"})
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		a.write(w, name, nil, &apiError{http.StatusUnsupportedMediaType, "bad_request", "the body must be application/json"})
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		a.write(w, name, nil, err)
		return
	}
	if a.p.draining() {
		a.write(w, name, nil, &apiError{http.StatusServiceUnavailable, "unavailable", "server is shutting down"})
		return
	}
	res, aerr := fn(r.Context(), body)
	a.write(w, name, res, aerr)
}

func readBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, *apiError) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, maxAPIBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &apiError{http.StatusRequestEntityTooLarge, "too_large", "the body is over " + strconv.Itoa(maxAPIBody) + " bytes"}
	case err != nil:
		return nil, badRequest("cannot read the body")
	}
	b := bytes.TrimSpace(buf.Bytes())
	if len(b) == 0 {
		b = []byte("{}")
	}
	return b, nil
}

func (a *api) write(w http.ResponseWriter, name string, res any, aerr *apiError) {
	status := http.StatusOK
	var body []byte
	if aerr != nil {
		status = aerr.status
		body, _ = json.Marshal(map[string]any{"error": map[string]string{"code": aerr.code, "message": aerr.message}})
	} else if raw, ok := res.(rawJSON); ok {
		body = raw
	} else {
		var err error
		if body, err = json.Marshal(res); err != nil {
			status = http.StatusInternalServerError
			body = []byte(`{"error":{"code":"internal","message":"cannot encode the answer"}}`)
		}
	}
	a.p.metrics.apiRequests.WithLabelValues(name, strconv.Itoa(status)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// decode reads a request body strictly: unknown fields are errors, so a
// typo does not silently do something else.
//
// Keys are matched exactly, as the WebSocket protocol matches them:
// encoding/json alone would take "Channel" for "channel".
func decode(body json.RawMessage, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad body: " + err.Error())
	}
	if dec.More() {
		return badRequest("bad body: more than one JSON value")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return badRequest("bad body: not a JSON object")
	}
	fields := jsonFields(reflect.TypeOf(v).Elem())
	for k := range keys {
		if !fields[k] {
			return badRequest("bad body: unknown field " + strconv.Quote(k))
		}
	}
	return nil
}

// jsonFields returns the JSON names of a struct's fields.
func jsonFields(t reflect.Type) map[string]bool {
	out := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// apiChannel checks a channel name and finds its namespace, as for a
// client.
func (a *api) apiChannel(ch string) (*Namespace, *apiError) {
	ns, perr := a.p.lookupChannel(ch)
	if perr != nil {
		return nil, protoToAPI(perr)
	}
	return ns, nil
}

// protoToAPI maps the protocol's error to the API's: the request's fault
// is a 400, the server's (unavailable) a 503.
func protoToAPI(perr *protoError) *apiError {
	switch perr.code {
	case codeBadChannel:
		return badRequest(perr.message)
	case codeUnknownNS, codeNotAvailable, codeBadRequest:
		return &apiError{http.StatusBadRequest, perr.code, perr.message}
	}
	return &apiError{http.StatusServiceUnavailable, perr.code, perr.message}
}

type publishResult struct {
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

func (a *api) publishOne(ch string, data json.RawMessage) (publishResult, *apiError) {
	ns, aerr := a.apiChannel(ch)
	if aerr != nil {
		return publishResult{}, aerr
	}
	pos, perr := a.p.publishTo(ch, ns, data)
	if perr != nil {
		return publishResult{}, protoToAPI(perr)
	}
	return publishResult{Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

func (a *api) publish(_ context.Context, body json.RawMessage) (any, *apiError) {
	var req struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	if req.Data == nil {
		return nil, badRequest("missing data")
	}
	return a.publishOne(req.Channel, req.Data)
}

func (a *api) broadcast(_ context.Context, body json.RawMessage) (any, *apiError) {
	var req struct {
		Channels []string        `json:"channels"`
		Data     json.RawMessage `json:"data"`
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	switch {
	case req.Data == nil:
		return nil, badRequest("missing data")
	case len(req.Channels) == 0:
		return nil, badRequest("missing channels")
	case len(req.Channels) > maxBroadcastChannels:
		return nil, badRequest("at most " + strconv.Itoa(maxBroadcastChannels) + " channels")
	}
	for _, ch := range req.Channels {
		if _, aerr := a.apiChannel(ch); aerr != nil {
			return nil, aerr // nothing published: the request is wrong as a whole
		}
	}
	type result struct {
		Channel string `json:"channel"`
		publishResult
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error,omitempty"`
	}
	out := make([]result, len(req.Channels))
	for i, ch := range req.Channels {
		out[i].Channel = ch
		res, aerr := a.publishOne(ch, req.Data)
		if aerr != nil {
			out[i].Error = &struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			}{aerr.code, aerr.message}
			continue
		}
		out[i].publishResult = res
	}
	return map[string]any{"results": out}, nil
}

func (a *api) disconnect(_ context.Context, body json.RawMessage) (any, *apiError) {
	var req struct {
		User   string `json:"user"`
		Client string `json:"client"`
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	if req.User == "" && req.Client == "" {
		return nil, badRequest("give a user, a client or both")
	}
	if req.Code == 0 {
		req.Code = CloseDisconnected
	}
	// RFC 6455 §7.4.2: 4000-4999 are the application's.
	if req.Code < 4000 || req.Code > 4999 {
		return nil, badRequest("code must be 4000-4999")
	}
	if len(req.Reason) > 120 {
		return nil, badRequest("reason longer than 120 bytes") // a close frame holds 123
	}
	if req.Reason == "" {
		req.Reason = "disconnected by the server"
	}
	if err := a.p.sendCommand(command{Op: "disconnect", User: req.User, Client: req.Client, Code: req.Code, Reason: req.Reason}); err != nil {
		return nil, protoToAPI(a.p.brokerError("disconnect", controlChannel, err))
	}
	return struct{}{}, nil
}

func (a *api) unsubscribe(_ context.Context, body json.RawMessage) (any, *apiError) {
	var req struct {
		Channel string `json:"channel"`
		User    string `json:"user"`
		Client  string `json:"client"`
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	if _, aerr := a.apiChannel(req.Channel); aerr != nil {
		return nil, aerr
	}
	if req.User == "" && req.Client == "" {
		return nil, badRequest("give a user, a client or both")
	}
	if err := a.p.sendCommand(command{Op: "unsubscribe", Channel: req.Channel, User: req.User, Client: req.Client}); err != nil {
		return nil, protoToAPI(a.p.brokerError("unsubscribe", controlChannel, err))
	}
	return struct{}{}, nil
}

type presenceEntry struct {
	Client    string `json:"client"`
	User      string `json:"user"`
	Connected int64  `json:"connected"` // unix ms
}

// presenceOf lists a presence channel's clients.
func (a *api) presenceOf(ctx context.Context, body json.RawMessage) ([]presenceEntry, *apiError) {
	var req struct {
		Channel string `json:"channel"`
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	ns, aerr := a.apiChannel(req.Channel)
	if aerr != nil {
		return nil, aerr
	}
	infos, perr := a.p.listPresence(ctx, req.Channel, ns)
	if perr != nil {
		return nil, protoToAPI(perr)
	}
	out := make([]presenceEntry, len(infos))
	for i, in := range infos {
		out[i] = presenceEntry{in.Client, in.User, in.ConnectedAt.UnixMilli()}
	}
	slices.SortFunc(out, func(x, y presenceEntry) int { return strings.Compare(x.Client, y.Client) })
	return out, nil
}

func (a *api) presence(ctx context.Context, body json.RawMessage) (any, *apiError) {
	out, aerr := a.presenceOf(ctx, body)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"clients": out}, nil
}

func (a *api) presenceStats(ctx context.Context, body json.RawMessage) (any, *apiError) {
	out, aerr := a.presenceOf(ctx, body)
	if aerr != nil {
		return nil, aerr
	}
	users := make(map[string]struct{})
	for _, e := range out {
		if e.User != "" {
			users[e.User] = struct{}{}
		}
	}
	return map[string]int{"clients": len(out), "users": len(users)}, nil
}

// rawJSON is an answer encoded already, written as it is.
type rawJSON []byte

func (a *api) history(ctx context.Context, body json.RawMessage) (any, *apiError) {
	var req struct {
		Channel string `json:"channel"`
		Since   uint64 `json:"since"`
		Limit   int    `json:"limit"`
		Reverse bool   `json:"reverse"`
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	if req.Limit < 0 || req.Limit > maxHistoryLimit {
		return nil, badRequest("limit must be 1 to " + strconv.Itoa(maxHistoryLimit))
	}
	ns, aerr := a.apiChannel(req.Channel)
	if aerr != nil {
		return nil, aerr
	}
	pubs, top, perr := a.p.readHistory(ctx, req.Channel, ns, history.Query{Since: req.Since, Limit: req.Limit, Reverse: req.Reverse})
	if perr != nil {
		return nil, protoToAPI(perr)
	}
	// Encoded by hand, as the history op is: json.Marshal would compact
	// and re-escape the published data, which is kept byte for byte.
	b := appendHistoryBody([]byte{'{'}, req.Channel, pubs, top)
	return rawJSON(append(b, '}')), nil
}

func (a *api) channels(_ context.Context, body json.RawMessage) (any, *apiError) {
	var req struct {
		Pattern string `json:"pattern"` // path.Match syntax; "" for all
	}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	if _, err := path.Match(req.Pattern, ""); err != nil {
		return nil, badRequest("bad pattern")
	}
	counts := make(map[string]int)
	truncated := false
	for _, n := range append(a.p.nodes.live(), a.p.self(a.startedAt)) {
		truncated = truncated || n.Truncated
		for ch, subs := range n.Channels {
			if ok, _ := path.Match(req.Pattern, ch); req.Pattern == "" || ok {
				counts[ch] += subs
			}
		}
	}
	type channel struct {
		Channel     string `json:"channel"`
		Subscribers int    `json:"subscribers"`
	}
	out := make([]channel, 0, len(counts))
	for ch, n := range counts {
		out = append(out, channel{ch, n})
	}
	slices.SortFunc(out, func(x, y channel) int { return strings.Compare(x.Channel, y.Channel) })
	return map[string]any{"channels": out, "truncated": truncated}, nil
}

func (a *api) info(_ context.Context, body json.RawMessage) (any, *apiError) {
	var req struct{}
	if aerr := decode(body, &req); aerr != nil {
		return nil, aerr
	}
	type node struct {
		ID        string `json:"id"`
		Clients   int    `json:"clients"`
		Channels  int    `json:"channels"`
		StartedAt int64  `json:"started_at"`
		Self      bool   `json:"self,omitempty"`
	}
	self := a.p.self(a.startedAt)
	out := []node{{self.ID, self.Clients, len(self.Channels), self.StartedAt, true}}
	total := self.Clients
	for _, n := range a.p.nodes.live() {
		out = append(out, node{n.ID, n.Clients, len(n.Channels), n.StartedAt, false})
		total += n.Clients
	}
	slices.SortFunc(out[1:], func(x, y node) int { return strings.Compare(x.ID, y.ID) })
	return map[string]any{"nodes": out, "clients": total}, nil
}
