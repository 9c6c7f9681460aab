// Package config reads and validates Switchboard's YAML configuration file.
//
// The file is strict: an unknown key is an error that names it, and every
// validation error names the key, the bad value and the rule it breaks. Keys
// whose feature is not wired yet are still parsed and validated, so a config
// written today keeps working as features land.
package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	SIP      SIP       `yaml:"sip"`
	Media    Media     `yaml:"media"`
	Web      Web       `yaml:"web"`
	Control  Control   `yaml:"control"`
	Storage  Storage   `yaml:"storage"`
	Log      Log       `yaml:"log"`
	Debug    Debug     `yaml:"debug"`
	Users    []User    `yaml:"users"`
	Trunks   []Trunk   `yaml:"trunks"`
	Webhooks []Webhook `yaml:"webhooks"`
	Events   Events    `yaml:"events"`
	Limits   Limits    `yaml:"limits"`
}

// SIP configures signalling: transports, the registrar and call routing.
type SIP struct {
	// Listen is the address for both UDP and TCP. Default 127.0.0.1:5060.
	Listen string `yaml:"listen"`
	// Domain is our SIP domain and the digest realm. Default switchboard.local.
	Domain string `yaml:"domain"`
	// Aliases are other host names or addresses that mean Domain in a
	// request URI (the listen address is always one).
	Aliases []string `yaml:"aliases"`
	// MinExpires is the shortest registration accepted (423 below it). Default 60s.
	MinExpires Duration `yaml:"min_expires"`
	// MaxExpires caps registrations: longer requests are granted this. Default 3600s.
	MaxExpires Duration `yaml:"max_expires"`
	// DefaultExpires applies when a REGISTER names no expiry. Default 3600s.
	DefaultExpires Duration `yaml:"default_expires"`
	// MaxContacts is the most bindings one user may hold. Default 10.
	MaxContacts int `yaml:"max_contacts"`
	// NonceLifetime is how long a digest nonce is accepted. Default 5m.
	NonceLifetime Duration `yaml:"nonce_lifetime"`
	// AuthAlgorithms are the digest algorithms offered, most preferred
	// first. Default [SHA-256, MD5] (RFC 8760).
	AuthAlgorithms []string `yaml:"auth_algorithms"`
	// LegacyDigestAgents are User-Agent prefixes of clients that fail on a
	// SHA-256 challenge; they, and clients that send no User-Agent, are
	// offered MD5 alone. Default: SIPp, baresip v0.,
	// baresip v1., sipsak.
	LegacyDigestAgents []string `yaml:"legacy_digest_agents"`
	// RingTimeout ends an unanswered call. Default 60s.
	RingTimeout Duration `yaml:"ring_timeout"`
	// UserAgent is the Server/User-Agent header value. Default "Switchboard".
	UserAgent string `yaml:"user_agent"`
	// TLS serves SIP over TLS when a certificate is set.
	TLS TLS `yaml:"tls"`
	// DrainTimeout is how long calls in progress may go on after SIGTERM
	// before they are ended with BYE. Default 60s; 0 ends them at once.
	DrainTimeout *Duration `yaml:"drain_timeout"`
}

// Media configures the RTP relay.
type Media struct {
	// Address is where relay ports are bound. Default 127.0.0.1.
	Address string `yaml:"address"`
	// PublicAddress is advertised in SDP when behind NAT; empty means Address.
	PublicAddress string `yaml:"public_address"`
	// PortMin and PortMax bound the relay's UDP ports (inclusive). Default 20000-20999.
	PortMin int `yaml:"port_min"`
	PortMax int `yaml:"port_max"`
	// Timeout ends a call whose media stopped both ways. Default 60s; 0 disables.
	Timeout *Duration `yaml:"timeout"`
	// WebRTCPort, when set, is the one UDP port on Address that every
	// browser call's ICE shares (one firewall rule). Default 0: each
	// browser call gets a port from the system.
	WebRTCPort int `yaml:"webrtc_port"`
}

// Web configures the HTTP listener: page, API, SIP over WebSocket.
type Web struct {
	// Listen is the HTTP address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// APITokens are the bearer tokens accepted by the API.
	APITokens []string `yaml:"api_tokens"`
	// TLS makes web.listen serve HTTPS (and WSS) when a certificate is set.
	TLS TLS `yaml:"tls"`
	// AllowedOrigins are the origins (scheme://host[:port]) of pages on
	// other sites that may open SIP over WebSocket at /ws. A browser's
	// handshake whose Origin is neither one of these nor our own host is
	// refused; clients that send no Origin (softphones) are not affected.
	// Default: none.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// TLS is a certificate and key in PEM files, reloaded when they change.
type TLS struct {
	// Listen is where SIP over TLS is served (sip.tls only). Default: the
	// sip.listen address with port 5061.
	Listen string `yaml:"listen"`
	Cert   string `yaml:"cert"`
	Key    string `yaml:"key"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// Control configures the local admin socket.
type Control struct {
	// Socket is the Unix socket path. Default ./data/switchboard.sock.
	Socket string `yaml:"socket"`
}

// Storage configures the embedded database.
type Storage struct {
	// Path is the SQLite file. Default ./data/switchboard.db.
	Path string `yaml:"path"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Debug configures diagnostics.
type Debug struct {
	// Listen is an address for net/http/pprof (profiling); empty disables
	// it. Keep it on loopback: profiles reveal memory contents.
	Listen string `yaml:"listen"`
}

// User is a SIP account defined in the file.
type User struct {
	Name        string `yaml:"name"`
	Password    string `yaml:"password"`
	DisplayName string `yaml:"display_name"`
}

// Trunk is an external SIP provider.
type Trunk struct {
	Name      string `yaml:"name"`
	Address   string `yaml:"address"`
	Transport string `yaml:"transport"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	// Register makes Switchboard register to the provider. Default true.
	Register *bool `yaml:"register"`
	// Inbound maps dialled numbers (DIDs) to users.
	Inbound map[string]string `yaml:"inbound"`
	// Outbound is a regular expression of numbers that leave through this trunk.
	Outbound string `yaml:"outbound"`
	// CallerID is the number presented on outbound calls.
	CallerID string `yaml:"caller_id"`
	// AuthUsername is the name for digest authentication when the
	// provider gives one apart from the account; empty means Username.
	AuthUsername string `yaml:"auth_username"`
	// AllowUsers limits outbound calls through the trunk to these users;
	// empty means every authenticated user.
	AllowUsers []string `yaml:"allow_users"`
	// CountryCode, such as "1" or "44", normalises dialled numbers to
	// E.164; empty sends them as dialled.
	CountryCode string `yaml:"country_code"`
	// RegisterExpires is the registration lifetime asked of the provider.
	// Default 600s.
	RegisterExpires Duration `yaml:"register_expires"`
	// PingInterval is how often OPTIONS checks the provider. Default 30s;
	// 0 disables the checks.
	PingInterval *Duration `yaml:"ping_interval"`
	// Timeout is how long the provider may take to answer a request at
	// all before it counts as down. Default 5s.
	Timeout Duration `yaml:"timeout"`
	// CAFile is a PEM file of the certificate authorities the provider's
	// TLS certificate must chain to, in place of the system's roots: for
	// a provider with a private CA. Only with transport tls.
	CAFile string `yaml:"ca_file"`
}

// RootCAs reads CAFile: nil when it is not set (the system's roots).
func (t Trunk) RootCAs() (*x509.CertPool, error) {
	if t.CAFile == "" {
		return nil, nil
	}
	b, err := readSmallFile(t.CAFile, maxCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return pool, nil
}

// maxCAFile bounds a CA bundle: the system's whole bundle is about 200 KiB.
const maxCAFile = 4 << 20

// readSmallFile reads a regular file of at most limit bytes. Anything else
// (a directory, a device such as /dev/zero, a pipe that would block the
// start) is refused with the reason.
func readSmallFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("is not a readable file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("is not a regular file (%s)", fi.Mode().Type())
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("is %d bytes, more than the %d a certificate file may be", fi.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("is not a readable file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("is not a readable file: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("is more than the %d bytes a certificate file may be", limit)
	}
	return b, nil
}

// Webhook is an HTTP receiver of events.
type Webhook struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"`
	// Events limits delivery to these event types; empty means all.
	Events []string `yaml:"events"`
}

// Events configures the event outbox that feeds webhooks and the event
// stream.
type Events struct {
	// RetryPeriod is how long a webhook delivery is retried (with
	// exponential backoff) before it is given up. Default 24h.
	RetryPeriod Duration `yaml:"retry_period"`
	// Retention is how long events and finished deliveries are kept in the
	// database. Default 168h (7 days); at least retry_period.
	Retention Duration `yaml:"retention"`
}

// Load reads, decodes, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes, defaults and validates a configuration document.
func Parse(data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg Config
	if root.Kind != 0 {
		if err := checkKeys(&root, "", &cfg); err != nil {
			return nil, err
		}
		if err := root.Decode(&cfg); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) applyDefaults() {
	setStr(&c.SIP.Listen, "127.0.0.1:5060")
	setStr(&c.SIP.Domain, "switchboard.local")
	setDur(&c.SIP.MinExpires, 60*time.Second)
	setDur(&c.SIP.MaxExpires, time.Hour)
	setDur(&c.SIP.DefaultExpires, time.Hour)
	setDur(&c.SIP.NonceLifetime, 5*time.Minute)
	setDur(&c.SIP.RingTimeout, 60*time.Second)
	if c.SIP.MaxContacts == 0 {
		c.SIP.MaxContacts = 10
	}
	if len(c.SIP.AuthAlgorithms) == 0 {
		c.SIP.AuthAlgorithms = []string{"SHA-256", "MD5"}
	}
	if c.SIP.LegacyDigestAgents == nil {
		c.SIP.LegacyDigestAgents = []string{"SIPp", "baresip v0.", "baresip v1.", "sipsak"}
	}
	setStr(&c.SIP.UserAgent, "Switchboard")
	if c.SIP.TLS.Enabled() && c.SIP.TLS.Listen == "" {
		if ap, err := netip.ParseAddrPort(c.SIP.Listen); err == nil {
			c.SIP.TLS.Listen = netip.AddrPortFrom(ap.Addr(), 5061).String()
		}
	}
	if c.SIP.DrainTimeout == nil {
		d := Duration(60 * time.Second)
		c.SIP.DrainTimeout = &d
	}
	setStr(&c.Media.Address, "127.0.0.1")
	if c.Media.PortMin == 0 && c.Media.PortMax == 0 {
		c.Media.PortMin, c.Media.PortMax = 20000, 20999
	}
	if c.Media.Timeout == nil {
		d := Duration(60 * time.Second)
		c.Media.Timeout = &d
	}
	setStr(&c.Web.Listen, "127.0.0.1:8080")
	setStr(&c.Control.Socket, "./data/switchboard.sock")
	setStr(&c.Storage.Path, "./data/switchboard.db")
	setStr(&c.Log.Level, "info")
	setStr(&c.Log.Format, "text")
	c.Limits.applyDefaults()
	setDur(&c.Events.RetryPeriod, 24*time.Hour)
	setDur(&c.Events.Retention, 7*24*time.Hour)
	for i := range c.Trunks {
		t := &c.Trunks[i]
		setStr(&t.Transport, "udp")
		if t.Register == nil {
			r := true
			t.Register = &r
		}
		setDur(&t.RegisterExpires, 600*time.Second)
		setDur(&t.Timeout, 5*time.Second)
		if t.PingInterval == nil {
			d := Duration(30 * time.Second)
			t.PingInterval = &d
		}
	}
}

func setStr(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDur(p *Duration, def time.Duration) {
	if *p == 0 {
		*p = Duration(def)
	}
}
