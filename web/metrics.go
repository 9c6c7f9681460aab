package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrapeTimeout bounds the queries made for one scrape.
const scrapeTimeout = 5 * time.Second

// newMetrics returns the /metrics handler over a registry of its own (not
// the process-wide default): Go runtime and process collectors, and the
// server's state read from the Service at scrape time.
func newMetrics(s *Server, results CallResults, prot Protection) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{s: s, results: results},
	)
	if prot != nil {
		reg.MustRegister(protectionCollector{prot})
	}
	if s.hooks != nil {
		reg.MustRegister(webhookCollector{s})
	}
	if s.sig != nil {
		reg.MustRegister(signallingCollector{s.sig})
	}
	if s.trunks != nil {
		reg.MustRegister(trunkCollector{s.trunks})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPromLogger{s},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       2 * scrapeTimeout,
	})
}

var (
	descInfo = prometheus.NewDesc("switchboard_build_info",
		"Always 1; the version label is the running build.", []string{"version"}, nil)
	descReady = prometheus.NewDesc("switchboard_ready",
		"1 when the server accepts calls (what /readyz reports), else 0.", nil, nil)
	descUsers = prometheus.NewDesc("switchboard_users",
		"SIP accounts.", nil, nil)
	descRegistrations = prometheus.NewDesc("switchboard_registrations",
		"Live registrar bindings.", nil, nil)
	descActiveCalls = prometheus.NewDesc("switchboard_active_calls",
		"Calls in progress, by state (ringing or answered).", []string{"state"}, nil)
	descCalls = prometheus.NewDesc("switchboard_calls_total",
		"Recorded calls that have ended, by result.", []string{"result"}, nil)
)

// stateCollector reads the server's state when Prometheus scrapes: no
// counters to keep in step with the signalling plane, which knows nothing
// of metrics.
type stateCollector struct {
	s       *Server
	results CallResults
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInfo, descReady, descUsers, descRegistrations, descActiveCalls, descCalls} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	svc := c.s.svc
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, c.s.cfg.Version)
	ready := 0.0
	if c.s.ready.Load() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)

	if users, err := svc.Users(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descUsers, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descUsers, prometheus.GaugeValue, float64(len(users)))
	}
	if regs, err := svc.Registrations(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descRegistrations, err)
	} else {
		ch <- prometheus.MustNewConstMetric(descRegistrations, prometheus.GaugeValue, float64(len(regs)))
	}
	if calls, err := svc.Calls(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descActiveCalls, err)
	} else {
		byState := map[string]int{"ringing": 0, "answered": 0}
		for _, call := range calls {
			byState[call.State]++
		}
		for state, n := range byState {
			ch <- prometheus.MustNewConstMetric(descActiveCalls, prometheus.GaugeValue, float64(n), state)
		}
	}
	if c.results == nil {
		return
	}
	if counts, err := c.results.CallResults(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descCalls, err)
	} else {
		for result, n := range counts {
			ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(n), result)
		}
	}
}

// slogPromLogger sends promhttp's errors to the server's log.
type slogPromLogger struct{ s *Server }

func (l slogPromLogger) Println(v ...any) {
	l.s.log.Warn("metrics scrape", "error", fmtArgs(v))
}

func fmtArgs(v []any) string { return strings.TrimSuffix(fmt.Sprintln(v...), "\n") }
