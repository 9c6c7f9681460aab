package web

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descTrunkUp = prometheus.NewDesc("switchboard_trunk_up",
		"1 when the trunk can take calls (registered, or up when it does not register), else 0.", []string{"trunk"}, nil)
	descTrunkState = prometheus.NewDesc("switchboard_trunk_state",
		"1 for the trunk's current state: starting, registered, up, failing or down.", []string{"trunk", "state"}, nil)
)

// trunkStates are the states a trunk reports, each exported as a series
// so that a state that is not current reads 0 rather than missing.
var trunkStates = []string{"starting", "registered", "up", "failing", "down"}

// trunkCollector reads the trunks' state at scrape time.
type trunkCollector struct{ t Trunks }

func (c trunkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTrunkUp
	ch <- descTrunkState
}

func (c trunkCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	ts, err := c.t.Trunks(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descTrunkUp, err)
		return
	}
	for _, t := range ts {
		up := 0.0
		if t.State == "registered" || t.State == "up" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descTrunkUp, prometheus.GaugeValue, up, t.Name)
		for _, st := range trunkStates {
			v := 0.0
			if st == t.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descTrunkState, prometheus.GaugeValue, v, t.Name, st)
		}
	}
}
