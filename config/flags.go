package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/wsgate/wsgate/balance"
)

// ParseBackend reads a --backend value: "host:port[,weight=N][,max_conns=N]".
// Errors name the part that is wrong; the caller names the flag or field.
func ParseBackend(s string) (balance.BackendConfig, error) {
	parts := strings.Split(s, ",")
	bc := balance.BackendConfig{Addr: strings.TrimSpace(parts[0])}
	if err := checkHostPort(bc.Addr); err != nil {
		return bc, err
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return bc, fmt.Errorf("option %q: want key=value", p)
		}
		n, err := strconv.Atoi(v)
		switch k {
		case "weight":
			if err != nil || n < 1 || n > balance.MaxWeight {
				return bc, fmt.Errorf("weight %q: want an integer from 1 to %d", v, balance.MaxWeight)
			}
			bc.Weight = n
		case "max_conns":
			if err != nil || n < 0 {
				return bc, fmt.Errorf("max_conns %q: want an integer ≥ 0 (0 = unlimited)", v)
			}
			bc.MaxConns = n
		default:
			return bc, fmt.Errorf("unknown option %q (want weight or max_conns)", k)
		}
	}
	return bc, nil
}

// checkHostPort accepts "host:port" with a port from 1 to 65535.
func checkHostPort(addr string) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("address %q: missing host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %q: port %q: want 1..65535", addr, port)
	}
	return nil
}

// CheckListen accepts "host:port" or ":port" (every address), port 0..65535.
func CheckListen(addr string) error {
	_, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("address %q: port %q: want 0..65535", addr, port)
	}
	return nil
}

func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("address %q: want host:port", addr)
	}
	host, port = addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("address %q: IPv6 hosts go in brackets, [::1]:8080", addr)
	}
	return host, port, nil
}
