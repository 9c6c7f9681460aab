package web

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard/switchboard/internal/jsontime"
)

// Protection is the SIP abuse protection as the API and the metrics see
// it. It is optional: without it there are no bans to show.
type Protection interface {
	// Protection returns the limits in force, the counters and the bans.
	Protection(ctx context.Context) (ProtectionState, error)
	// Unban lifts the ban of an address, or fails with ErrNotFound.
	Unban(ctx context.Context, addr string) error
}

// ProtectionState is the abuse protection's configuration and state.
type ProtectionState struct {
	Limits       map[string]float64 `json:"limits" doc:"Limits in force (the config file's limits.* keys); 0 is off."`
	Bans         []Ban              `json:"bans" nullable:"false" doc:"Source addresses banned now."`
	BansTotal    uint64             `json:"bans_total" doc:"Bans imposed since the server started."`
	AuthFailures uint64             `json:"auth_failures_total" doc:"Wrong passwords and unknown users since start."`
	Dropped      map[string]uint64  `json:"dropped_total" doc:"SIP requests dropped or refused since start, by reason (banned, scanner, rate, too_large, overload)."`
	CallsRefused map[string]uint64  `json:"calls_refused_total" doc:"New calls refused since start, by reason (max_calls, max_calls_per_user, draining)."`
}

// Ban is a source address that may not talk to the server for a while.
type Ban struct {
	Address  string          `json:"address" doc:"The banned IP address."`
	Reason   string          `json:"reason" doc:"scanner, authentication failures or request rate."`
	Since    jsontime.Millis `json:"since"`
	Until    jsontime.Millis `json:"until"`
	Offences int             `json:"offences" doc:"Bans of this address within a day, this one included: each doubles the ban time."`
}

type protectionOutput struct {
	Body ProtectionState
}

type banPath struct {
	Address string `path:"address" doc:"The banned IP address."`
}

const tagProtection = "Protection"

func (s *Server) registerProtection(api huma.API, p Protection) {
	get := op("get-protection", http.MethodGet, "/api/v1/protection", tagProtection, "Abuse protection: limits, counters and bans")
	get.Description = "Limits in force, what they have dropped or refused, and the source addresses banned now (after wrong passwords, a scanner's User-Agent, or too many requests)."
	huma.Register(api, get, func(ctx context.Context, _ *struct{}) (*protectionOutput, error) {
		st, err := p.Protection(ctx)
		if err != nil {
			return nil, s.problem(ctx, "protection", err)
		}
		if st.Bans == nil {
			st.Bans = []Ban{}
		}
		return &protectionOutput{Body: st}, nil
	})
	unban := op("unban", http.MethodDelete, "/api/v1/protection/bans/{address}", tagProtection, "Lift a ban", http.StatusNotFound)
	unban.DefaultStatus = http.StatusNoContent
	huma.Register(api, unban, func(ctx context.Context, in *banPath) (*struct{}, error) {
		if err := p.Unban(ctx, in.Address); err != nil {
			return nil, s.problem(ctx, "ban of "+quote(in.Address), err)
		}
		s.log.Info("ban lifted by operator", "source", in.Address)
		return nil, nil
	})
}

var (
	descBanned = prometheus.NewDesc("switchboard_sip_banned_sources",
		"Source addresses banned now.", nil, nil)
	descBans = prometheus.NewDesc("switchboard_sip_bans_total",
		"Bans imposed since start.", nil, nil)
	descAuthFailures = prometheus.NewDesc("switchboard_sip_auth_failures_total",
		"Wrong passwords and unknown users since start.", nil, nil)
	descDropped = prometheus.NewDesc("switchboard_sip_dropped_total",
		"SIP requests dropped or refused by the abuse protection, by reason.", []string{"reason"}, nil)
	descRefused = prometheus.NewDesc("switchboard_calls_refused_total",
		"New calls refused by a limit, by reason.", []string{"reason"}, nil)
	descLimit = prometheus.NewDesc("switchboard_limit",
		"A limit in force (limits.* in the config file); 0 is off.", []string{"limit"}, nil)
)

// protectionCollector exports the abuse protection's state at scrape time.
type protectionCollector struct{ p Protection }

func (c protectionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBanned, descBans, descAuthFailures, descDropped, descRefused, descLimit} {
		ch <- d
	}
}

func (c protectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, err := c.p.Protection(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBanned, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descBanned, prometheus.GaugeValue, float64(len(st.Bans)))
	ch <- prometheus.MustNewConstMetric(descBans, prometheus.CounterValue, float64(st.BansTotal))
	ch <- prometheus.MustNewConstMetric(descAuthFailures, prometheus.CounterValue, float64(st.AuthFailures))
	for r, n := range st.Dropped {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), r)
	}
	for r, n := range st.CallsRefused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), r)
	}
	for l, v := range st.Limits {
		ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, v, l)
	}
}
