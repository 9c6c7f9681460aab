package web

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

type recordListInput struct {
	User   string    `query:"user" doc:"Only calls this user made or received."`
	Since  time.Time `query:"since" doc:"Only calls started at or after this time (RFC 3339)."`
	Until  time.Time `query:"until" doc:"Only calls started before this time (RFC 3339)."`
	Result string    `query:"result" doc:"Only calls with this result, e.g. answered."`
	PageParams
}

type recordListOutput struct {
	Body Page[Record]
}

type recordOutput struct {
	Body Record
}

func (s *Server) registerRecords(api huma.API) {
	list := op("list-records", http.MethodGet, "/api/v1/records", tagRecords, "List call records", http.StatusUnprocessableEntity)
	list.Description = "Finished calls and calls in progress, newest first."
	huma.Register(api, list,
		func(ctx context.Context, in *recordListInput) (*recordListOutput, error) {
			before, err := in.after()
			if err != nil {
				return nil, err
			}
			// One more than asked for tells whether a next page exists.
			recs, err := s.svc.Records(ctx, RecordFilter{
				User: in.User, Since: in.Since, Until: in.Until, Result: in.Result,
				Limit: in.Limit + 1, Before: before,
			})
			if err != nil {
				return nil, s.problem(ctx, "records", err)
			}
			p := Page[Record]{Items: recs[:min(in.Limit, len(recs))]}
			if len(recs) > in.Limit {
				p.NextCursor = encodeCursor(p.Items[len(p.Items)-1].ID)
			}
			for i := range p.Items {
				p.Items[i] = withRecordLegs(p.Items[i])
			}
			if p.Items == nil {
				p.Items = []Record{}
			}
			return &recordListOutput{Body: p}, nil
		})

	huma.Register(api, op("get-record", http.MethodGet, "/api/v1/records/{id}", tagRecords, "Get a call record", http.StatusNotFound),
		func(ctx context.Context, in *struct {
			ID string `path:"id" doc:"Call ID."`
		}) (*recordOutput, error) {
			r, err := s.svc.Record(ctx, in.ID)
			if err != nil {
				return nil, s.problem(ctx, "record "+quote(in.ID), err)
			}
			return &recordOutput{Body: withRecordLegs(r)}, nil
		})
}

func withRecordLegs(r Record) Record {
	if r.Legs == nil {
		r.Legs = []RecordLeg{}
	}
	return r
}
