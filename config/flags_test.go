package config

import (
	"strings"
	"testing"

	"github.com/wsgate/wsgate/balance"
)

func TestParseBackend(t *testing.T) {
	cases := []struct {
		in      string
		want    balance.BackendConfig
		wantErr string
	}{
		{in: "127.0.0.1:8010", want: balance.BackendConfig{Addr: "127.0.0.1:8010"}},
		{in: "ws-1.internal:80,weight=3", want: balance.BackendConfig{Addr: "ws-1.internal:80", Weight: 3}},
		{in: "[::1]:8010, max_conns=100 ,weight=2", want: balance.BackendConfig{Addr: "[::1]:8010", Weight: 2, MaxConns: 100}},
		{in: "127.0.0.1", wantErr: `address "127.0.0.1": want host:port`},
		{in: ":8010", wantErr: `address ":8010": missing host`},
		{in: "h:0", wantErr: `port "0": want 1..65535`},
		{in: "h:99999", wantErr: `port "99999"`},
		{in: "::1:80", wantErr: "IPv6 hosts go in brackets"},
		{in: "h:80,weight=0", wantErr: `weight "0": want an integer from 1 to 256`},
		{in: "h:80,weight=x", wantErr: `weight "x"`},
		{in: "h:80,max_conns=-1", wantErr: `max_conns "-1"`},
		{in: "h:80,speed=9", wantErr: `unknown option "speed"`},
		{in: "h:80,weight", wantErr: `option "weight": want key=value`},
	}
	for _, tc := range cases {
		got, err := ParseBackend(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseBackend(%q) error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseBackend(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for _, ok := range []string{":8080", "127.0.0.1:0", "[::]:443"} {
		if err := CheckListen(ok); err != nil {
			t.Errorf("CheckListen(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"8080", "x:y", ":70000", "::1:80"} {
		if err := CheckListen(bad); err == nil {
			t.Errorf("CheckListen(%q) accepted", bad)
		}
	}
}
