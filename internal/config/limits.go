package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Limits configures the built-in abuse protection (per source address
// rate limits, bans, scanner filtering) and the call and message limits.
// A limit set to 0 is off.
type Limits struct {
	// RequestsPerSecond is the sustained rate of SIP requests one source
	// address may send. Default 50.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// RequestBurst is how many requests over the rate may come at once.
	// Default 100.
	RequestBurst int `yaml:"request_burst"`
	// AuthFailures wrong passwords from one source within
	// AuthFailureWindow get it banned. Default 10 in 1m.
	AuthFailures      int      `yaml:"auth_failures"`
	AuthFailureWindow Duration `yaml:"auth_failure_window"`
	// BanTime is the first ban's length; each repeat within a day doubles
	// it up to MaxBanTime. Default 5m and 24h.
	BanTime    Duration `yaml:"ban_time"`
	MaxBanTime Duration `yaml:"max_ban_time"`
	// ScannerAgents are User-Agent substrings of SIP scanners: their
	// requests are dropped and their source banned.
	ScannerAgents []string `yaml:"scanner_agents"`
	// MaxMessageSize bounds a SIP message in bytes. Default 32768.
	MaxMessageSize int `yaml:"max_message_size"`
	// MaxHeaders bounds the header fields of a request. Default 100.
	MaxHeaders int `yaml:"max_headers"`
	// MaxCalls bounds the calls in progress; 0 means as many as the media
	// port range holds. Default 0.
	MaxCalls int `yaml:"max_calls"`
	// MaxCallsPerUser bounds the calls one user is in at once, placed or
	// received (from a phone or a trunk's DID). Default 10.
	MaxCallsPerUser int `yaml:"max_calls_per_user"`
	// MaxPending bounds the SIP requests being handled at once; past it new
	// work is refused with 503 and Retry-After. Default 1000.
	MaxPending int `yaml:"max_pending"`
	// Trusted are addresses or networks never rate limited or banned (a
	// trunk's provider, a monitoring host). Default loopback.
	Trusted []string `yaml:"trusted"`
}

// DefaultScannerAgents are User-Agent substrings of common SIP scanners.
var DefaultScannerAgents = []string{
	"friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "sundayddr",
	"iWar", "sip-scan", "SIPScan", "pplsip", "smap",
}

func (l *Limits) applyDefaults() {
	if l.RequestsPerSecond == 0 {
		l.RequestsPerSecond = 50
	}
	if l.RequestBurst == 0 {
		l.RequestBurst = 100
	}
	if l.AuthFailures == 0 {
		l.AuthFailures = 10
	}
	setDur(&l.AuthFailureWindow, time.Minute)
	setDur(&l.BanTime, 5*time.Minute)
	setDur(&l.MaxBanTime, 24*time.Hour)
	if l.ScannerAgents == nil {
		l.ScannerAgents = DefaultScannerAgents
	}
	if l.MaxMessageSize == 0 {
		l.MaxMessageSize = 32768
	}
	if l.MaxHeaders == 0 {
		l.MaxHeaders = 100
	}
	if l.MaxCallsPerUser == 0 {
		l.MaxCallsPerUser = 10
	}
	if l.MaxPending == 0 {
		l.MaxPending = 1000
	}
	if l.Trusted == nil {
		l.Trusted = []string{"127.0.0.0/8", "::1"}
	}
}

func (l *Limits) validate(v *validator) {
	if l.RequestsPerSecond < 0 {
		v.addf("limits.requests_per_second %g must not be negative", l.RequestsPerSecond)
	}
	for key, n := range map[string]int{
		"limits.request_burst": l.RequestBurst, "limits.auth_failures": l.AuthFailures,
		"limits.max_calls": l.MaxCalls, "limits.max_calls_per_user": l.MaxCallsPerUser,
		"limits.max_pending": l.MaxPending, "limits.max_headers": l.MaxHeaders,
	} {
		if n < 0 {
			v.addf("%s %d must not be negative", key, n)
		}
	}
	if l.MaxMessageSize < 1024 || l.MaxMessageSize > 1<<20 {
		v.addf("limits.max_message_size %d must be between 1024 and 1048576 bytes", l.MaxMessageSize)
	}
	if l.MaxHeaders > 0 && l.MaxHeaders < 10 {
		v.addf("limits.max_headers %d must be at least 10 (a request has about 8 mandatory headers)", l.MaxHeaders)
	}
	v.positive("limits.auth_failure_window", l.AuthFailureWindow)
	v.positive("limits.ban_time", l.BanTime)
	v.positive("limits.max_ban_time", l.MaxBanTime)
	if l.MaxBanTime < l.BanTime {
		v.addf("limits.max_ban_time %s must not be below limits.ban_time %s", l.MaxBanTime, l.BanTime)
	}
	for i, s := range l.ScannerAgents {
		if len(s) < 3 {
			v.addf("limits.scanner_agents[%d] %q must have at least 3 characters", i, s)
		}
	}
	for i, s := range l.Trusted {
		if _, err := ParsePrefix(s); err != nil {
			v.addf("limits.trusted[%d] %q must be an IP address or network, such as 192.0.2.10 or 192.0.2.0/24", i, s)
		}
	}
}

// ParsePrefix reads an address ("192.0.2.1", a single host) or a network
// ("192.0.2.0/24").
func ParsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an address or network: %q", s)
	}
	return p.Masked(), nil
}
