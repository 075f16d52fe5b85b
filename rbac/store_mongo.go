package rbac

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB), in three collections:
//
//	rbac_roles        _id = org/name                  custom roles
//	rbac_assignments  _id = org/user/role/project     (project empty for an org-wide assignment)
//	rbac_grants       _id = org/user/permission       direct grants
//
// Every write is one insert or one delete by _id, never an update: an insert with a unique _id
// is atomic on every MongoDB-wire server (FerretDB v1's updates are not; see auth.MongoStore),
// so of concurrent identical Assign calls exactly one succeeds. The parts of an _id are escaped
// ('%' and '/' as %25 and %2F), so ids with a '/' in them cannot collide.
type MongoStore struct {
	roles       *mongo.Collection
	assignments *mongo.Collection
	grants      *mongo.Collection
}

var _ Store = (*MongoStore)(nil)

type roleDoc struct {
	ID   string `bson:"_id"`
	Role `bson:",inline"`
}

type assignmentDoc struct {
	ID         string `bson:"_id"`
	Assignment `bson:",inline"`
}

type grantDoc struct {
	ID    string `bson:"_id"`
	Grant `bson:",inline"`
}

// NewMongoStore returns a store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{
		roles:       db.Collection("rbac_roles"),
		assignments: db.Collection("rbac_assignments"),
		grants:      db.Collection("rbac_grants"),
	}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.roles, Name: "org_name", Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "name", Value: 1}}},
		{Coll: s.assignments, Name: "user_org", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "org_id", Value: 1}}},
		{Coll: s.assignments, Name: "org_role", Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "role", Value: 1}}},
		{Coll: s.grants, Name: "user_org", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "org_id", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	return s, nil
}

var idEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// docID joins escaped parts with '/'.
func docID(parts ...string) string {
	for i, p := range parts {
		parts[i] = idEscaper.Replace(p)
	}
	return strings.Join(parts, "/")
}

func roleID(orgID, name string) string { return docID(orgID, name) }

func assignmentID(a Assignment) string { return docID(a.OrgID, a.UserID, a.Role, a.ProjectID) }

func grantID(g Grant) string { return docID(g.OrgID, g.UserID, g.Permission) }

func insertErr(err error, what string) error { return mongox.InsertErr(err, what, ErrAlreadyExists) }

func deleteByID(ctx context.Context, c *mongo.Collection, id, what string) error {
	return mongox.DeleteByID(ctx, c, id, what, ErrNotFound)
}

// CreateRole inserts a custom role; a role of that name in the organization is ErrAlreadyExists.
func (s *MongoStore) CreateRole(ctx context.Context, r Role) error {
	r.BuiltIn = false
	_, err := s.roles.InsertOne(ctx, roleDoc{ID: roleID(r.OrgID, r.Name), Role: r})
	return insertErr(err, "role")
}

// GetRole finds a custom role of an organization.
func (s *MongoStore) GetRole(ctx context.Context, orgID, name string) (Role, error) {
	var d roleDoc
	err := s.roles.FindOne(ctx, bson.D{{Key: "_id", Value: roleID(orgID, name)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Role{}, fmt.Errorf("role: %w", ErrNotFound)
	}
	if err != nil {
		return Role{}, fmt.Errorf("find role: %w", err)
	}
	return d.Role, nil
}

// ListRoles returns the custom roles of an organization by name.
func (s *MongoStore) ListRoles(ctx context.Context, orgID string) ([]Role, error) {
	docs, err := mongox.FindAll[roleDoc](ctx, s.roles, bson.D{{Key: "org_id", Value: orgID}}, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}), "roles")
	if err != nil {
		return nil, err
	}
	out := make([]Role, len(docs))
	for i, d := range docs {
		out[i] = d.Role
	}
	return out, nil
}

// DeleteRole deletes a custom role (not its assignments: see DeleteRoleAssignments).
func (s *MongoStore) DeleteRole(ctx context.Context, orgID, name string) error {
	return deleteByID(ctx, s.roles, roleID(orgID, name), "role")
}

// Assign inserts an assignment; the same user, org, role and project again is ErrAlreadyExists.
func (s *MongoStore) Assign(ctx context.Context, a Assignment) error {
	_, err := s.assignments.InsertOne(ctx, assignmentDoc{ID: assignmentID(a), Assignment: a})
	return insertErr(err, "assignment")
}

// Unassign deletes the assignment with a's user, org, role and project.
func (s *MongoStore) Unassign(ctx context.Context, a Assignment) error {
	return deleteByID(ctx, s.assignments, assignmentID(a), "assignment")
}

// ListAssignments returns a user's assignments in an organization, by role then project.
func (s *MongoStore) ListAssignments(ctx context.Context, userID, orgID string) ([]Assignment, error) {
	docs, err := mongox.FindAll[assignmentDoc](ctx, s.assignments,
		bson.D{{Key: "user_id", Value: userID}, {Key: "org_id", Value: orgID}},
		options.Find().SetSort(bson.D{{Key: "role", Value: 1}, {Key: "project_id", Value: 1}}), "assignments")
	if err != nil {
		return nil, err
	}
	out := make([]Assignment, len(docs))
	for i, d := range docs {
		out[i] = d.Assignment
	}
	return out, nil
}

// DeleteRoleAssignments deletes every assignment of a role in an organization and says how many.
func (s *MongoStore) DeleteRoleAssignments(ctx context.Context, orgID, role string) (int, error) {
	res, err := s.assignments.DeleteMany(ctx, bson.D{{Key: "org_id", Value: orgID}, {Key: "role", Value: role}})
	if err != nil {
		return 0, fmt.Errorf("delete assignments of role: %w", err)
	}
	return int(res.DeletedCount), nil
}

// AddGrant inserts a direct grant; the same user, org and permission again is ErrAlreadyExists.
func (s *MongoStore) AddGrant(ctx context.Context, g Grant) error {
	_, err := s.grants.InsertOne(ctx, grantDoc{ID: grantID(g), Grant: g})
	return insertErr(err, "grant")
}

// RemoveGrant deletes the direct grant with g's user, org and permission.
func (s *MongoStore) RemoveGrant(ctx context.Context, g Grant) error {
	return deleteByID(ctx, s.grants, grantID(g), "grant")
}

// ListGrants returns a user's direct grants in an organization, by permission.
func (s *MongoStore) ListGrants(ctx context.Context, userID, orgID string) ([]Grant, error) {
	docs, err := mongox.FindAll[grantDoc](ctx, s.grants,
		bson.D{{Key: "user_id", Value: userID}, {Key: "org_id", Value: orgID}},
		options.Find().SetSort(bson.D{{Key: "permission", Value: 1}}), "grants")
	if err != nil {
		return nil, err
	}
	out := make([]Grant, len(docs))
	for i, d := range docs {
		out[i] = d.Grant
	}
	return out, nil
}
