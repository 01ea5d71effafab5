package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialViaProxy opens a tunnel to target through an HTTP(S) CONNECT proxy
// (RFC 9110 §9.3.6) or a SOCKS5 proxy (RFC 1928, RFC 1929).
func dialViaProxy(ctx context.Context, proxy *url.URL, target string, dial dialFunc, tlsConfig *tls.Config) (net.Conn, error) {
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		port := "80"
		switch proxy.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		}
		proxyAddr = net.JoinHostPort(proxy.Hostname(), port)
	}
	conn, err := dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	switch proxy.Scheme {
	case "http":
		err = connectTunnel(conn, proxy, target)
	case "https":
		cfg := tlsConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg.ServerName = proxy.Hostname()
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err = tc.HandshakeContext(ctx); err == nil {
			conn = tc
			err = connectTunnel(conn, proxy, target)
		}
	case "socks5", "socks5h":
		err = socks5Connect(conn, proxy, target)
	default:
		err = fmt.Errorf("websocket: proxy scheme %q not supported", proxy.Scheme)
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

func connectTunnel(conn net.Conn, proxy *url.URL, target string) error {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: target},
		Host:   target,
		Header: make(http.Header),
	}
	if proxy.User != nil {
		pw, _ := proxy.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(proxy.User.Username() + ":" + pw))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(conn); err != nil {
		return err
	}
	// Read the reply byte by byte up to its end, so no tunnelled byte is
	// swallowed by a buffer.
	br := bufio.NewReaderSize(&oneByteReader{conn}, 16)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("websocket: proxy refused CONNECT: %s", resp.Status)
	}
	return nil
}

// oneByteReader reads one byte per call.
type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// socks5Connect performs a SOCKS5 CONNECT with no authentication or a user
// name and password.
func socks5Connect(conn net.Conn, proxy *url.URL, target string) error {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return errors.New("websocket: bad port for SOCKS5 proxy")
	}
	methods := []byte{5, 1, 0}
	if proxy.User != nil {
		methods = []byte{5, 2, 0, 2}
	}
	if _, err := conn.Write(methods); err != nil {
		return err
	}
	var reply [2]byte
	if _, err := io.ReadFull(conn, reply[:]); err != nil {
		return err
	}
	if reply[0] != 5 {
		return errors.New("websocket: proxy is not SOCKS5")
	}
	switch reply[1] {
	case 0:
	case 2:
		if proxy.User == nil {
			return errors.New("websocket: SOCKS5 proxy wants a password")
		}
		user := proxy.User.Username()
		pw, _ := proxy.User.Password()
		if len(user) > 255 || len(pw) > 255 {
			return errors.New("websocket: SOCKS5 user name or password too long")
		}
		auth := []byte{1, byte(len(user))}
		auth = append(auth, user...)
		auth = append(auth, byte(len(pw)))
		auth = append(auth, pw...)
		if _, err := conn.Write(auth); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, reply[:]); err != nil {
			return err
		}
		if reply[1] != 0 {
			return errors.New("websocket: SOCKS5 authentication failed")
		}
	default:
		return errors.New("websocket: SOCKS5 proxy accepts none of our authentication methods")
	}
	req := []byte{5, 1, 0}
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			req = append(req, 1)
			req = append(req, ip4...)
		} else {
			req = append(req, 4)
			req = append(req, ip.To16()...)
		}
	} else {
		if len(host) > 255 {
			return errors.New("websocket: host name too long for SOCKS5")
		}
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := conn.Write(req); err != nil {
		return err
	}
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return err
	}
	if head[1] != 0 {
		return fmt.Errorf("websocket: SOCKS5 proxy refused the connection (reply %d)", head[1])
	}
	var skip int
	switch head[3] {
	case 1:
		skip = 4
	case 4:
		skip = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return err
		}
		skip = int(l[0])
	default:
		return errors.New("websocket: bad SOCKS5 reply")
	}
	_, err = io.ReadFull(conn, make([]byte, skip+2))
	return err
}
