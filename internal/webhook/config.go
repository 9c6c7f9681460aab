package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultRetryPeriod  = 24 * time.Hour
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 10 * time.Minute
	DefaultPollInterval = 30 * time.Second
)

// Target is one webhook: a receiver URL, the secret its requests are signed
// with, and the event types it wants.
type Target struct {
	// URL receives the POSTs. It is also the webhook's identity in the
	// store: changing it makes a new webhook.
	URL string `yaml:"url"`
	// Secret is the signing secret: "whsec_" and the base64 of the key, or
	// any other string, whose bytes are then the key.
	Secret string `yaml:"secret"`
	// Events are the event types delivered; empty means every type.
	Events []string `yaml:"events"`
}

// Config configures a Deliverer. Zero values mean the defaults.
type Config struct {
	// Webhooks are the receivers, each identified by its URL.
	Webhooks []Target `yaml:"webhooks"`
	// Timeout bounds one delivery request, from connecting to reading the
	// response. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// RetryPeriod is how long after an event happened its delivery is
	// retried; a delivery still failing then expires. Default 24h.
	RetryPeriod time.Duration `yaml:"retry_period"`
	// MinBackoff is the wait after the first failed attempt; it doubles
	// with every further failure. Default 1s.
	MinBackoff time.Duration `yaml:"min_backoff"`
	// MaxBackoff caps the wait between attempts (before ±20% jitter).
	// Default 10m.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// PollInterval is how often each webhook's queue is checked without
	// being poked: a safety net for events written by someone who did not
	// poke. Default 30s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Now is the clock; nil means time.Now.
	Now func() time.Time `yaml:"-"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeout, DefaultTimeout)
	def(&c.RetryPeriod, DefaultRetryPeriod)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.PollInterval, DefaultPollInterval)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether the configuration can run a Deliverer.
func (c Config) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{
		"timeout": c.Timeout, "retry_period": c.RetryPeriod, "min_backoff": c.MinBackoff,
		"max_backoff": c.MaxBackoff, "poll_interval": c.PollInterval,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("webhook: %s %s must not be negative", name, d))
		}
	}
	if d := c.withDefaults(); d.MinBackoff > d.MaxBackoff {
		errs = append(errs, fmt.Errorf("webhook: min_backoff %s is above max_backoff %s", d.MinBackoff, d.MaxBackoff))
	}
	errs = append(errs, validateTargets(c.Webhooks))
	return errors.Join(errs...)
}

func validateTargets(ts []Target) error {
	var errs []error
	first := make(map[string]int, len(ts)) // URL → index of its first use
	for i, t := range ts {
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("webhook: webhooks[%d]: url must be an http:// or https:// URL", i))
		} else if j, ok := first[t.URL]; ok {
			// The URL itself is not shown: it may hold a secret.
			errs = append(errs, fmt.Errorf("webhook: webhooks[%d]: url %s is the same as webhooks[%d]'s", i, Label(t.URL), j))
		} else {
			first[t.URL] = i
		}
		if t.Secret == "" {
			errs = append(errs, fmt.Errorf("webhook: webhooks[%d]: empty secret", i))
		} else if _, err := signingKey(t.Secret); err != nil {
			errs = append(errs, fmt.Errorf("webhooks[%d]: %w", i, err))
		}
		for j, e := range t.Events {
			if e == "" {
				errs = append(errs, fmt.Errorf("webhook: webhooks[%d].events[%d] is empty", i, j))
			}
		}
	}
	return errors.Join(errs...)
}
