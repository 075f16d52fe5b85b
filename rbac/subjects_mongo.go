package rbac

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/mongox"
)

// A subject's assignments and direct grants in an organization, read in two _id look-ups.
//
// FerretDB v1 on SQLite pushes down only an _id equality, so a filter on user and org (what a
// cold decision needs) scanned every assignment of every user. Instead each (org, user) is a
// document of a mongox.Chain: rbac_subjects holds one document per version, _id
// org/user/<version>, with the subject's whole set of assignments and grants, and
// rbac_subject_heads a recent copy, where a read starts. Versions are never removed (changes of
// roles are rare; erasing a user removes them all).
type subjectBody struct {
	OrgID       string       `bson:"org_id"`
	UserID      string       `bson:"user_id"`
	Assignments []Assignment `bson:"assignments"`
	Grants      []Grant      `bson:"grants"`
}

func subjectKey(orgID, userID string) string { return docID(orgID, userID) }

// latest returns the subject's current version (version 0, empty, when it has none).
func (s *MongoStore) latest(ctx context.Context, orgID, userID string) (subjectBody, error) {
	v, err := s.subjects.Latest(ctx, subjectKey(orgID, userID))
	return v.Body, err
}

// change applies edit to the subject's latest version and writes the result as the next one;
// edit returns an error to refuse the change (nothing is written).
func (s *MongoStore) change(ctx context.Context, orgID, userID string, edit func(d *subjectBody) error) error {
	return s.subjects.Change(ctx, subjectKey(orgID, userID), func(d *subjectBody) error {
		d.OrgID, d.UserID = orgID, userID
		return edit(d)
	})
}

func sameAssignment(a, b Assignment) bool {
	return a.UserID == b.UserID && a.OrgID == b.OrgID && a.Role == b.Role && a.ProjectID == b.ProjectID
}

// Assign adds an assignment; the same user, org, role and project again is ErrAlreadyExists.
func (s *MongoStore) Assign(ctx context.Context, a Assignment) error {
	return s.change(ctx, a.OrgID, a.UserID, func(d *subjectBody) error {
		if slices.ContainsFunc(d.Assignments, func(b Assignment) bool { return sameAssignment(a, b) }) {
			return fmt.Errorf("assignment: %w", ErrAlreadyExists)
		}
		d.Assignments = append(d.Assignments, a)
		return nil
	})
}

// Unassign removes the assignment with a's user, org, role and project.
func (s *MongoStore) Unassign(ctx context.Context, a Assignment) error {
	return s.change(ctx, a.OrgID, a.UserID, func(d *subjectBody) error {
		i := slices.IndexFunc(d.Assignments, func(b Assignment) bool { return sameAssignment(a, b) })
		if i < 0 {
			return fmt.Errorf("assignment: %w", ErrNotFound)
		}
		d.Assignments = slices.Delete(d.Assignments, i, i+1)
		return nil
	})
}

// ListAssignments returns a user's assignments in an organization, by role then project.
func (s *MongoStore) ListAssignments(ctx context.Context, userID, orgID string) ([]Assignment, error) {
	as, _, err := s.ReadSubject(ctx, userID, orgID)
	return as, err
}

// ReadSubject returns a user's assignments (by role then project) and direct grants (by
// permission) in an organization, from one read of its latest version.
func (s *MongoStore) ReadSubject(ctx context.Context, userID, orgID string) ([]Assignment, []Grant, error) {
	d, err := s.latest(ctx, orgID, userID)
	if err != nil {
		return nil, nil, err
	}
	as, gs := slices.Clone(d.Assignments), slices.Clone(d.Grants)
	slices.SortFunc(as, func(a, b Assignment) int {
		if c := strings.Compare(a.Role, b.Role); c != 0 {
			return c
		}
		return strings.Compare(a.ProjectID, b.ProjectID)
	})
	slices.SortFunc(gs, func(a, b Grant) int { return strings.Compare(a.Permission, b.Permission) })
	if as == nil {
		as = []Assignment{}
	}
	if gs == nil {
		gs = []Grant{}
	}
	return as, gs, nil
}

// DeleteRoleAssignments removes every assignment of a role in an organization and says how
// many. It finds the subjects whose head holds the role (a scan of one document per subject on
// FerretDB, not of every version: deleting a role is an administrator's act), then takes the
// role out of each one's latest version. A head behind its latest version can hide an
// assignment made just before; it is left, and grants nothing: an assignment older than its
// role is one of an earlier role of the name (Authorizer).
func (s *MongoStore) DeleteRoleAssignments(ctx context.Context, orgID, role string) (int, error) {
	docs, err := mongox.FindAll[subjectBody](ctx, s.subjects.Heads(),
		bson.D{{Key: "org_id", Value: orgID}, {Key: "assignments.role", Value: role}},
		options.Find().SetProjection(bson.D{{Key: "user_id", Value: 1}}), "assignments of role")
	if err != nil {
		return 0, err
	}
	users := make([]string, 0, len(docs))
	for _, d := range docs {
		users = append(users, d.UserID)
	}
	slices.Sort(users)
	removed := 0
	for _, user := range slices.Compact(users) {
		n := 0
		err := s.change(ctx, orgID, user, func(d *subjectBody) error {
			before := len(d.Assignments)
			d.Assignments = slices.DeleteFunc(d.Assignments, func(a Assignment) bool { return a.Role == role })
			if n = before - len(d.Assignments); n == 0 {
				return mongox.ErrUnchanged
			}
			return nil
		})
		if err != nil {
			return removed, fmt.Errorf("delete assignments of role: %w", err)
		}
		removed += n
	}
	return removed, nil
}

// AddGrant adds a direct grant; the same user, org and permission again is ErrAlreadyExists.
func (s *MongoStore) AddGrant(ctx context.Context, g Grant) error {
	return s.change(ctx, g.OrgID, g.UserID, func(d *subjectBody) error {
		if slices.ContainsFunc(d.Grants, func(h Grant) bool { return h.Permission == g.Permission }) {
			return fmt.Errorf("grant: %w", ErrAlreadyExists)
		}
		d.Grants = append(d.Grants, g)
		return nil
	})
}

// RemoveGrant removes the direct grant with g's user, org and permission.
func (s *MongoStore) RemoveGrant(ctx context.Context, g Grant) error {
	return s.change(ctx, g.OrgID, g.UserID, func(d *subjectBody) error {
		i := slices.IndexFunc(d.Grants, func(h Grant) bool { return h.Permission == g.Permission })
		if i < 0 {
			return fmt.Errorf("grant: %w", ErrNotFound)
		}
		d.Grants = slices.Delete(d.Grants, i, i+1)
		return nil
	})
}

// ListGrants returns a user's direct grants in an organization, by permission.
func (s *MongoStore) ListGrants(ctx context.Context, userID, orgID string) ([]Grant, error) {
	_, gs, err := s.ReadSubject(ctx, userID, orgID)
	return gs, err
}

// EraseUser removes every version and head of userID, in every organization (a scan on
// FerretDB: an erasure is an administrator's act). Heads go last, so an interrupted erase
// leaves the user's latest state readable, and running it again finishes it.
func (s *MongoStore) EraseUser(ctx context.Context, userID string) error {
	return s.subjects.Erase(ctx, bson.D{{Key: "user_id", Value: userID}})
}

// backfill moves the assignments and grants of a store made before rbac_subjects (one
// document each in rbac_assignments and rbac_grants) into a first version per subject, once.
func (s *MongoStore) backfill(ctx context.Context, db *mongo.Database) error {
	const marker = "meta:subjects-v1"
	if done, err := mongox.Migrated(ctx, s.subjects.Heads(), marker); done || err != nil {
		return err
	}
	assignments, err := mongox.FindAll[assignmentDoc](ctx, db.Collection("rbac_assignments"), bson.D{}, options.Find(), "assignments")
	if err != nil {
		return err
	}
	grants, err := mongox.FindAll[grantDoc](ctx, db.Collection("rbac_grants"), bson.D{}, options.Find(), "grants")
	if err != nil {
		return err
	}
	first := map[string]*subjectBody{}
	doc := func(orgID, userID string) *subjectBody {
		k := subjectKey(orgID, userID)
		if first[k] == nil {
			first[k] = &subjectBody{OrgID: orgID, UserID: userID}
		}
		return first[k]
	}
	for _, a := range assignments {
		d := doc(a.OrgID, a.UserID)
		d.Assignments = append(d.Assignments, a.Assignment)
	}
	for _, g := range grants {
		d := doc(g.OrgID, g.UserID)
		d.Grants = append(d.Grants, g.Grant)
	}
	for k, d := range first {
		if _, err := s.subjects.Begin(ctx, k, *d); err != nil {
			return fmt.Errorf("backfill assignments: %w", err)
		}
	}
	return mongox.MarkMigrated(ctx, s.subjects.Heads(), marker)
}
