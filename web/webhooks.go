package web

import (
	"context"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard/switchboard/internal/jsontime"
)

// WebhookStatus is the delivery state of one webhook.
type WebhookStatus struct {
	URL string `json:"url" doc:"The receiver; a password in the URL is shown as xxxxx."`
	// Label is what logs and /metrics (served without a token) call the
	// webhook: they must not show its URL, which may hold a secret.
	Label      string `json:"label" doc:"The webhook's name in logs, delivery errors and /metrics: the URL's scheme and host and a fingerprint of the whole URL, which show no secret held in its path, query or password." example:"https://hooks.example.com#3fa2c1d0"`
	Configured bool   `json:"configured" doc:"The webhook is in the current configuration; false for one removed whose deliveries are still kept."`
	Pending    int    `json:"pending" doc:"Events not delivered yet: the queue depth."`
	Delivered  int    `json:"delivered" doc:"Events delivered (still kept; older ones are pruned)."`
	Expired    int    `json:"expired" doc:"Events given up after the retry period (events.retry_period)."`
	// The head of the queue: it holds back the events after it.
	OldestPendingAt jsontime.Millis `json:"oldest_pending_at,omitzero" doc:"When the oldest pending event happened; absent when none is pending."`
	Attempts        int             `json:"attempts" doc:"Failed attempts to deliver the oldest pending event."`
	NextAttemptAt   jsontime.Millis `json:"next_attempt_at,omitzero" doc:"When it is tried next; absent when due now or nothing is pending."`
	LastError       string          `json:"last_error,omitempty" doc:"Why its last attempt failed."`
	LastDeliveredAt jsontime.Millis `json:"last_delivered_at,omitzero" doc:"When an event was last delivered."`
}

// Webhooks reports webhook delivery state. It is optional: without it the
// API lists no webhooks.
type Webhooks interface {
	WebhookStatus(ctx context.Context) ([]WebhookStatus, error)
}

type webhookListOutput struct {
	Body List[WebhookStatus]
}

func (s *Server) registerWebhooks(api huma.API) {
	o := op("list-webhooks", http.MethodGet, "/api/v1/webhooks", tagEvents, "Webhook delivery state")
	o.Description = "Each webhook's queue: pending, delivered and expired events, and the attempts, next attempt and last error of the oldest pending one, which holds back the rest (delivery is in order)."
	huma.Register(api, o, func(ctx context.Context, _ *struct{}) (*webhookListOutput, error) {
		out := &webhookListOutput{Body: List[WebhookStatus]{Items: []WebhookStatus{}}}
		if s.hooks == nil {
			return out, nil
		}
		ws, err := s.hooks.WebhookStatus(ctx)
		if err != nil {
			return nil, s.problem(ctx, "webhooks", err)
		}
		if ws != nil {
			out.Body.Items = ws
		}
		return out, nil
	})
}

var (
	descWebhookPending = prometheus.NewDesc("switchboard_webhook_pending",
		"Events waiting to be delivered to a webhook (queue depth).", []string{"webhook"}, nil)
	descWebhookDelivered = prometheus.NewDesc("switchboard_webhook_delivered",
		"Delivered events still kept, per webhook.", []string{"webhook"}, nil)
	descWebhookExpired = prometheus.NewDesc("switchboard_webhook_expired",
		"Events given up after the retry period and still kept, per webhook.", []string{"webhook"}, nil)
	descWebhookAttempts = prometheus.NewDesc("switchboard_webhook_head_failed_attempts",
		"Failed attempts to deliver the oldest pending event of a webhook; above 0 means the receiver is failing.", []string{"webhook"}, nil)
	descWebhookOldest = prometheus.NewDesc("switchboard_webhook_oldest_pending_age_seconds",
		"Age of the oldest pending event of a webhook; 0 when none is pending.", []string{"webhook"}, nil)
)

// webhookCollector reads the webhook queues at scrape time.
type webhookCollector struct{ s *Server }

func (c webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWebhookPending, descWebhookDelivered, descWebhookExpired, descWebhookAttempts, descWebhookOldest} {
		ch <- d
	}
}

func (c webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	ws, err := c.s.hooks.WebhookStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descWebhookPending, err)
		return
	}
	now := c.s.now()
	for i, w := range ws {
		// Never the URL: /metrics is served without a token, and a
		// webhook URL may hold a secret in its path or query.
		label := w.Label
		if label == "" {
			label = "webhook[" + strconv.Itoa(i) + "]"
		}
		ch <- prometheus.MustNewConstMetric(descWebhookPending, prometheus.GaugeValue, float64(w.Pending), label)
		ch <- prometheus.MustNewConstMetric(descWebhookDelivered, prometheus.GaugeValue, float64(w.Delivered), label)
		ch <- prometheus.MustNewConstMetric(descWebhookExpired, prometheus.GaugeValue, float64(w.Expired), label)
		ch <- prometheus.MustNewConstMetric(descWebhookAttempts, prometheus.GaugeValue, float64(w.Attempts), label)
		age := 0.0
		if !w.OldestPendingAt.IsZero() {
			age = max(0, now.Sub(w.OldestPendingAt.Time()).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(descWebhookOldest, prometheus.GaugeValue, age, label)
	}
}
