package connect

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

// verboseBodyLimit bounds the response body printed with -v.
const verboseBodyLimit = 512

// explainDialError tells the user why the handshake with cfg.url failed and
// what to change, in a line or two: what happened, then a "hint:" line. With
// -v it adds the server's response or the raw error (-h says so).
func explainDialError(w io.Writer, cfg *config, resp *http.Response, err error) {
	var what, hint string
	if resp != nil {
		what, hint = explainResponse(cfg, resp)
	} else {
		what, hint = explainNetError(cfg, err)
	}
	fmt.Fprintf(w, "latch connect: %s\n", what)
	if hint != "" {
		fmt.Fprintf(w, "latch connect: hint: %s\n", hint)
	}
	if !cfg.verbose {
		return
	}
	if resp == nil {
		fmt.Fprintf(w, "latch connect: error: %v\n", err)
		return
	}
	printResponse(w, resp)
}

// explainResponse covers a server that answered the handshake with
// something other than 101 Switching Protocols (RFC 6455 §4.1).
func explainResponse(cfg *config, resp *http.Response) (what, hint string) {
	status := "HTTP " + resp.Status
	u := cfg.url.Redacted()
	switch code := resp.StatusCode; {
	case code == http.StatusSwitchingProtocols:
		// A 101 that fails the checks of RFC 6455 §4.1 (accept key,
		// Upgrade, extensions or subprotocol offered).
		return fmt.Sprintf("the server switched protocols but its answer is not a valid WebSocket handshake (%s)", status),
			"the server or a proxy in front of it does not speak RFC 6455; -v shows its headers"
	case code >= 200 && code < 300:
		return fmt.Sprintf("%s is not a WebSocket endpoint: the server answered %s, a plain web page, instead of upgrading", u, status),
			fmt.Sprintf("connect to the path that takes WebSockets; on latch serve, %s or %s", withPath(cfg.url, "/ws"), withPath(cfg.url, "/echo"))
	case code >= 300 && code < 400 && resp.Header.Get("Location") != "":
		return fmt.Sprintf("the server redirects %s to %s (%s); WebSocket clients do not follow redirects", u, resp.Header.Get("Location"), status),
			"connect to the new location (as ws:// or wss://)"
	case code == http.StatusForbidden && (cfg.origin != "" || bodyMentions(resp, "origin")):
		if cfg.origin == "" {
			return fmt.Sprintf("the server refused the handshake for want of an Origin it accepts (%s); none was sent", status),
				"send the origin of a page the server accepts with -origin URL"
		}
		o := cfg.origin
		if p, err := url.Parse(o); err == nil && p.Host != "" {
			o = p.Host
		}
		return fmt.Sprintf("the server refused Origin %q (%s): browsers on that page may not connect", cfg.origin, status),
			fmt.Sprintf("pass -origin with an origin the server accepts (its own, %s), or let the server accept this one: latch serve -allowed-origins %s",
				ownOrigin(cfg.url), o)
	case code == http.StatusNotFound:
		return fmt.Sprintf("the server has no %s (%s)", pathOf(cfg.url), status),
			fmt.Sprintf("check the path; on latch serve, WebSockets are on %s and %s", withPath(cfg.url, "/ws"), withPath(cfg.url, "/echo"))
	case code == http.StatusUnauthorized:
		return fmt.Sprintf("the server wants credentials (%s)", status),
			"send them with -H, e.g. -H 'Authorization: Bearer TOKEN'"
	case code == http.StatusMisdirectedRequest:
		return fmt.Sprintf("the server does not serve the host name %q (%s)", cfg.url.Hostname(), status),
			fmt.Sprintf("connect by IP address, or let the server accept the name: latch serve -allowed-hosts %s", cfg.url.Hostname())
	case code == http.StatusBadRequest && bodyMentions(resp, "https server"):
		return fmt.Sprintf("the server speaks TLS, but the URL is ws:// (%s)", status),
			"use wss:// (or https://)"
	}
	what = "the server refused the WebSocket handshake: " + status
	if line := plainTextLine(resp); line != "" {
		what += ": " + line
	}
	return what, ""
}

// explainNetError covers a handshake that got no HTTP answer.
func explainNetError(cfg *config, err error) (what, hint string) {
	hostPort := cfg.url.Host
	if cfg.url.Port() == "" {
		port := "80"
		if cfg.url.Scheme == "wss" {
			port = "443"
		}
		hostPort = net.JoinHostPort(cfg.url.Hostname(), port)
	}
	var (
		unknownCA   x509.UnknownAuthorityError
		invalid     x509.CertificateInvalidError
		wrongHost   x509.HostnameError
		dnsErr      *net.DNSError
		recordErr   tls.RecordHeaderError
		tlsVerifyOK = "trust the server's CA with -cacert FILE (PEM), or skip the check with -insecure (for testing only)"
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Sprintf("the certificate of %s is signed by an unknown authority (self-signed, or a private CA)", hostPort), tlsVerifyOK
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		c := invalid.Cert
		return fmt.Sprintf("the certificate of %s is outside its validity (valid %s to %s, now %s)", hostPort,
				c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly), time.Now().UTC().Format(time.DateOnly)),
			"renew the server's certificate (or check this machine's clock); -insecure skips the check (for testing only)"
	case errors.As(err, &wrongHost):
		return fmt.Sprintf("the certificate of %s is for %s, not %q", hostPort, certNames(wrongHost.Certificate), wrongHost.Host),
			"connect with a name the certificate lists, or skip the check with -insecure (for testing only)"
	case errors.As(err, &invalid):
		return fmt.Sprintf("the certificate of %s is not valid: %v", hostPort, invalid), tlsVerifyOK
	case errors.As(err, &recordErr):
		return fmt.Sprintf("%s answered without TLS, but the URL is wss://", hostPort),
			"use ws:// (or http://) for a server without TLS"
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s (connection refused)", hostPort),
			"start the server (latch serve prints the address it listens on), or check the host and port"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("no such host %q", dnsErr.Name), "check the host name in the URL"
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		limit := "-timeout " + cfg.timeout.String()
		return fmt.Sprintf("no WebSocket handshake from %s within %s", hostPort, limit),
			"check that the server is up and reachable, or give it longer with -timeout"
	}
	return err.Error(), ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// withPath returns u with path p, for a hint.
func withPath(u *url.URL, p string) string {
	v := *u
	v.Path, v.RawPath, v.RawQuery = p, "", ""
	return v.Redacted()
}

func pathOf(u *url.URL) string {
	if u.Path == "" {
		return "/"
	}
	return u.Path
}

// ownOrigin is the origin of a page served by the server at u, which the
// default origin check of the websocket package accepts.
func ownOrigin(u *url.URL) string {
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host
}

func certNames(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}

// body returns the start of a failed handshake's body (the websocket
// package keeps its first KiB), read once.
func body(resp *http.Response) []byte {
	if resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return b
}

func bodyMentions(resp *http.Response, word string) bool {
	return strings.Contains(strings.ToLower(string(body(resp))), word)
}

// plainTextLine returns the first line of a text/plain body, short enough
// to quote in the message; other bodies (HTML pages) only show with -v.
func plainTextLine(resp *http.Response) string {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/plain" {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(strings.ToValidUTF8(string(body(resp)), "?")), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return strings.TrimSpace(line)
}

// printResponse writes the response head and the start of the body, for -v.
func printResponse(w io.Writer, resp *http.Response) {
	fmt.Fprintf(w, "< %s %s\n", resp.Proto, resp.Status)
	names := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(w, "< %s: %s\n", k, v)
		}
	}
	b := body(resp)
	if len(b) == 0 {
		return
	}
	truncated := len(b) > verboseBodyLimit
	b = b[:min(len(b), verboseBodyLimit)]
	fmt.Fprintln(w, "<")
	s := strings.ToValidUTF8(string(b), "?")
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(w, "< %s\n", strings.TrimRight(line, "\r"))
	}
	if truncated {
		fmt.Fprintf(w, "< [body truncated at %d bytes]\n", verboseBodyLimit)
	}
}
