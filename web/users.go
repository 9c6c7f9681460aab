package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
)

type userPath struct {
	Name string `path:"name" doc:"User name."`
}

type userOutput struct {
	Body User
}

type userCreatedOutput struct {
	Location string `header:"Location" doc:"Path of the new user."`
	Body     User
}

type userListOutput struct {
	Body Page[User]
}

func (s *Server) registerUsers(api huma.API) {
	huma.Register(api, op("list-users", http.MethodGet, "/api/v1/users", tagUsers, "List users", http.StatusUnprocessableEntity),
		func(ctx context.Context, in *PageParams) (*userListOutput, error) {
			after, err := in.after()
			if err != nil {
				return nil, err
			}
			users, err := s.svc.Users(ctx)
			if err != nil {
				return nil, s.problem(ctx, "users", err)
			}
			return &userListOutput{Body: pageOf(users, func(u User) string { return u.Name }, in.Limit, after)}, nil
		})

	huma.Register(api, op("get-user", http.MethodGet, "/api/v1/users/{name}", tagUsers, "Get a user", http.StatusNotFound),
		func(ctx context.Context, in *userPath) (*userOutput, error) {
			u, err := s.svc.User(ctx, in.Name)
			if err != nil {
				return nil, s.problem(ctx, "user "+quote(in.Name), err)
			}
			return &userOutput{Body: u}, nil
		})

	create := op("create-user", http.MethodPost, "/api/v1/users", tagUsers, "Create a user", http.StatusConflict)
	create.DefaultStatus = http.StatusCreated
	create.Description = "Creates a SIP account. The password is write-only: only its digest hashes for the server's realm are stored. The account can register at once."
	huma.Register(api, create,
		func(ctx context.Context, in *struct{ Body NewUser }) (*userCreatedOutput, error) {
			u, err := s.svc.CreateUser(ctx, in.Body)
			if err != nil {
				return nil, s.problem(ctx, "user "+quote(in.Body.Name), err)
			}
			s.log.Info("user created", "user", u.Name)
			return &userCreatedOutput{Location: "/api/v1/users/" + url.PathEscape(u.Name), Body: u}, nil
		})

	update := op("update-user", http.MethodPatch, "/api/v1/users/{name}", tagUsers, "Change a user's display name or password", http.StatusNotFound)
	update.Description = "Absent fields keep their value. A user from the config file (from_config) can be changed, but the next start syncs it back from the file."
	huma.Register(api, update,
		func(ctx context.Context, in *struct {
			Name string `path:"name" doc:"User name."`
			Body UserChange
		}) (*userOutput, error) {
			u, err := s.svc.UpdateUser(ctx, in.Name, in.Body)
			if err != nil {
				return nil, s.problem(ctx, "user "+quote(in.Name), err)
			}
			s.log.Info("user changed", "user", u.Name, "display_name_changed", in.Body.DisplayName != nil, "password_changed", in.Body.Password != nil)
			return &userOutput{Body: u}, nil
		})

	del := op("delete-user", http.MethodDelete, "/api/v1/users/{name}", tagUsers, "Delete a user", http.StatusNotFound)
	del.DefaultStatus = http.StatusNoContent
	del.Description = "Deletes the account and its registrations. A user from the config file comes back at the next start unless it is removed from the file."
	huma.Register(api, del,
		func(ctx context.Context, in *userPath) (*struct{}, error) {
			if err := s.svc.DeleteUser(ctx, in.Name); err != nil {
				return nil, s.problem(ctx, "user "+quote(in.Name), err)
			}
			s.log.Info("user deleted", "user", in.Name)
			return nil, nil
		})
}

// quote quotes a name from a request for an error message.
func quote(s string) string { return strconv.Quote(s) }
