package rbac

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB), in three collections:
//
//	rbac_roles          _id = org/name             custom roles
//	rbac_subjects       _id = org/user/<version>   a subject's assignments and grants, each version
//	rbac_subject_heads  _id = org/user             a recent version: where a read starts
//
// Every atomic step is an insert with a unique _id, never a conditional update: an insert is
// atomic on every MongoDB-wire server (FerretDB v1's updates are not; see auth.MongoStore), so
// of concurrent identical Assign calls exactly one succeeds (subjects_mongo.go). The parts of an
// _id are escaped ('%' and '/' as %25 and %2F), so ids with a '/' in them cannot collide.
// (rbac_assignments and rbac_grants, one document per assignment and grant, are read once by a
// store made before rbac_subjects, to move them; nothing writes them any more.)
type MongoStore struct {
	roles    *mongo.Collection
	subjects *mongox.Chain[subjectBody] // each subject's assignments and grants (subjects_mongo.go)
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
		roles:    db.Collection("rbac_roles"),
		subjects: mongox.NewChain[subjectBody](db.Collection("rbac_subjects"), db.Collection("rbac_subject_heads"), "assignments and grants", 0),
	}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.roles, Name: "org_name", Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "name", Value: 1}}},
		{Coll: s.subjects.Versions(), Name: "org_role", Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "assignments.role", Value: 1}}},
		{Coll: s.subjects.Heads(), Name: "org_user", Keys: bson.D{{Key: "org_id", Value: 1}, {Key: "user_id", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	if err := s.backfill(ctx, db); err != nil {
		return nil, err
	}
	return s, nil
}

func docID(parts ...string) string { return mongox.Key(parts...) }

func roleID(orgID, name string) string { return docID(orgID, name) }

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
