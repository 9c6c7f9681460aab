package main

import (
	"fmt"
	"html"
	"io"
	"math"
)

// bar is one ratio in the chart's first panel.
type bar struct {
	label  string
	value  float64
	target float64 // 0: none
}

// chartBars returns the ratios the chart shows, all Switchboard relative to
// the reference system in the same run, higher is better.
func chartBars(b *bench) []bar {
	var bars []bar
	if len(b.runs["register"]) > 0 {
		_, _, r := b.sustainedMedian("register", us, refRegistrar)
		bars = append(bars, bar{"REGISTER/s sustained (vs Kamailio, in memory)", r, targetRegisterRatio})
		p := b.params("register")[0]
		bars = append(bars, bar{"REGISTER per CPU-second (vs Kamailio, in memory)", b.ratioOf("register", refRegistrar, us, p, sipRun.cpuUS), 0})
		if b.has("register", refRegistrarDB) {
			_, _, r := b.sustainedMedian("register", us, refRegistrarDB)
			bars = append(bars, bar{"REGISTER/s sustained (vs Kamailio, SQLite)", r, targetRegisterRatio})
			bars = append(bars, bar{"REGISTER per CPU-second (vs Kamailio, SQLite)", b.ratioOf("register", refRegistrarDB, us, p, sipRun.cpuUS), 0})
		}
	}
	if len(b.runs["calls"]) > 0 {
		_, _, r := b.sustainedMedian("calls", us, refRegistrar)
		bars = append(bars, bar{"Calls/s sustained (vs Kamailio proxy)", r, targetCPSRatio})
		p := b.params("calls")[0]
		bars = append(bars, bar{"Calls per CPU-second (vs Kamailio proxy)", b.ratioOf("calls", refRegistrar, us, p, sipRun.cpuUS), 0})
	}
	if len(b.relay[us]) > 0 {
		bars = append(bars, bar{"RTP packets per CPU-second (vs rtpengine)",
			b.relayRatioAll(refRelay, us, func(r relayResult) float64 { return r.RelayCPUPerPkt }), targetRelayRatio})
		bars = append(bars, bar{"Largest clean relay load (vs rtpengine)", b.largestPassing(us) / b.largestPassing(refRelay), 1})
	}
	return bars
}

// writeChart draws two panels: the ratios, and relay CPU against concurrent
// calls for both relays.
func writeChart(w io.Writer, b *bench) {
	const (
		width    = 920
		left     = 400
		right    = 40
		barH     = 22
		barGap   = 12
		top      = 56
		plotH    = 230
		plotLeft = 80
	)
	bars := chartBars(b)
	panelA := top + len(bars)*(barH+barGap) + 30
	height := panelA + 60 + plotH + 70
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="20" y="26" font-size="16" font-weight="bold">Switchboard ÷ reference, same run (median of repetitions; 1.0 = equal)</text>` + "\n")
	p(`<text x="20" y="44" fill="#555">%s, %s CPUs, shared and loaded machine: compare ratios, not absolute figures</text>`+"\n",
		html.EscapeString(b.machine["date"]), html.EscapeString(b.machine["cpus"]))

	maxV := 2.0
	for _, br := range bars {
		if !math.IsNaN(br.value) && !math.IsInf(br.value, 0) {
			maxV = math.Max(maxV, br.value*1.1)
		}
	}
	maxV = math.Ceil(maxV*2) / 2
	plotW := float64(width - left - right)
	x := func(v float64) float64 { return left + plotW*v/maxV }
	axisBottom := top + len(bars)*(barH+barGap)
	for v := 0.0; v <= maxV+1e-9; v += 0.5 {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e4e4"/>`+"\n", x(v), top-6, x(v), axisBottom)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%.1f×</text>`+"\n", x(v), axisBottom+16, v)
	}
	p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-width="1.5"/>`+"\n", x(1), top-8, x(1), axisBottom)
	for i, br := range bars {
		y := top + i*(barH+barGap)
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-10, y+barH-6, html.EscapeString(br.label))
		if math.IsNaN(br.value) || math.IsInf(br.value, 0) {
			p(`<text x="%d" y="%d" fill="#888">not measured</text>`+"\n", left+6, y+barH-6)
			continue
		}
		color := "#2e7d32"
		if br.target > 0 && br.value < br.target {
			color = "#c62828"
		} else if br.target == 0 {
			color = "#1565c0"
		}
		p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, x(math.Min(br.value, maxV))-left, barH, color)
		p(`<text x="%.1f" y="%d">%.2f×</text>`+"\n", x(math.Min(br.value, maxV))+6, y+barH-6, br.value)
		if br.target > 0 {
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-dasharray="4,3" stroke-width="2"/>`+"\n",
				x(br.target), y-3, x(br.target), y+barH+3)
		}
	}
	p(`<text x="%d" y="%d" fill="#555">green: target met · red: below target (dashed line) · blue: efficiency, no target</text>`+"\n",
		left, axisBottom+34)

	// Panel B: relay CPU per forwarded packet against concurrent calls
	// (CPU% alone would favour a relay that forwarded less).
	y0 := panelA + 60
	cpp := func(r relayResult) float64 { return r.RelayCPUPerPkt }
	p(`<text x="20" y="%d" font-size="16" font-weight="bold">Relay CPU per forwarded packet (µs, lower is better) against concurrent calls</text>`+"\n", y0-20)
	calls := b.relayCalls(us)
	for _, c := range b.relayCalls(refRelay) {
		if len(calls) == 0 || c > calls[len(calls)-1] {
			calls = append(calls, c)
		}
	}
	if len(calls) == 0 {
		p(`<text x="%d" y="%d" fill="#888">relay not measured</text>`+"\n", plotLeft, y0+40)
		p("</svg>\n")
		return
	}
	maxC := float64(calls[len(calls)-1])
	maxCPU := 10.0
	for _, sys := range []string{us, refRelay} {
		for _, c := range b.relayCalls(sys) {
			if v := b.relayMedian(sys, c, cpp); !math.IsNaN(v) {
				maxCPU = math.Max(maxCPU, v*1.1)
			}
		}
	}
	maxCPU = math.Ceil(maxCPU/10) * 10
	pw := float64(width - plotLeft - 200)
	px := func(c float64) float64 { return plotLeft + pw*c/maxC }
	py := func(v float64) float64 { return float64(y0) + plotH - plotH*v/maxCPU }
	step := maxCPU / 5
	for v := 0.0; v <= maxCPU+1e-9; v += step {
		p(`<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e4e4e4"/>`+"\n", plotLeft, py(v), px(maxC), py(v))
		p(`<text x="%d" y="%.1f" text-anchor="end" fill="#555">%.0f µs</text>`+"\n", plotLeft-6, py(v)+4, v)
	}
	for _, c := range calls {
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%d</text>`+"\n", px(float64(c)), y0+plotH+18, c)
	}
	p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#555">concurrent calls (hollow point: run not clean in most repetitions)</text>`+"\n", px(maxC/2), y0+plotH+40)
	colors := map[string]string{us: "#2e7d32", refRelay: "#6a1b9a"}
	for i, sys := range []string{us, refRelay} {
		var pts string
		for _, c := range b.relayCalls(sys) {
			v := b.relayMedian(sys, c, cpp)
			pts += fmt.Sprintf("%.1f,%.1f ", px(float64(c)), py(v))
		}
		p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", pts, colors[sys])
		for _, c := range b.relayCalls(sys) {
			v := b.relayMedian(sys, c, cpp)
			n := 0
			for _, r := range b.relay[sys][c] {
				if r.Pass {
					n++
				}
			}
			fill := colors[sys]
			if 2*n <= len(b.relay[sys][c]) {
				fill = "#ffffff"
			}
			p(`<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" stroke="%s" stroke-width="2"/>`+"\n", px(float64(c)), py(v), fill, colors[sys])
		}
		ly := y0 + 20 + i*22
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", px(maxC)+20, ly, px(maxC)+44, ly, colors[sys])
		name := "Switchboard relay"
		if sys == refRelay {
			name = "rtpengine (userspace)"
		}
		p(`<text x="%.1f" y="%d">%s</text>`+"\n", px(maxC)+50, ly+4, name)
	}
	p("</svg>\n")
}
