package rbac

import (
	"context"
	"errors"
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
// cold decision needs) scanned every assignment of every user. Instead each (org, user) has
// versions: rbac_subjects holds one document per version, _id org/user/<version>, with the
// subject's whole set of assignments and grants; a change reads the latest version N and
// inserts N+1 with the change applied. The insert is the atomic step (a unique _id, atomic on
// FerretDB and MongoDB alike): of concurrent changes exactly one writes N+1, the others read it
// and try again on top of it, so no change is lost and no assignment counted twice.
//
// rbac_subject_heads holds, per (org, user), a copy of a recent version: a hint, written after
// each change (a plain replace, which FerretDB does not make atomic, so it may lag). A read takes
// the head, then looks for the version after it: usually absent, so the head is current (two
// look-ups); a lagging head costs one look-up per version it lags. Versions are never removed
// (changes of roles are rare; erasing a user removes them all), so the chain from any head to
// the latest version is always there.
type subjectDoc struct {
	ID          string       `bson:"_id"`
	OrgID       string       `bson:"org_id"`
	UserID      string       `bson:"user_id"`
	Version     int64        `bson:"version"`
	Assignments []Assignment `bson:"assignments"`
	Grants      []Grant      `bson:"grants"`
}

// maxSubjectRetries bounds how often a change is tried again on top of concurrent ones.
const maxSubjectRetries = 100

func subjectKey(orgID, userID string) string { return docID(orgID, userID) }

func versionID(orgID, userID string, v int64) string {
	return subjectKey(orgID, userID) + fmt.Sprintf("/%010d", v)
}

// latest returns the subject's current version (version 0, empty, when it has none).
func (s *MongoStore) latest(ctx context.Context, orgID, userID string) (subjectDoc, error) {
	cur := subjectDoc{OrgID: orgID, UserID: userID}
	head, err := mongox.FindOne[subjectDoc](ctx, s.heads, mongox.ByID(subjectKey(orgID, userID)), "subject", ErrNotFound)
	switch {
	case err == nil:
		cur = head
	case !errors.Is(err, ErrNotFound):
		return subjectDoc{}, err
	}
	for {
		next, err := mongox.FindOne[subjectDoc](ctx, s.subjects, mongox.ByID(versionID(orgID, userID, cur.Version+1)), "subject", ErrNotFound)
		if errors.Is(err, ErrNotFound) {
			return cur, nil
		}
		if err != nil {
			return subjectDoc{}, err
		}
		cur = next
	}
}

// change applies edit to the subject's latest version and writes the result as the next one;
// edit returns an error to refuse the change (nothing is written).
func (s *MongoStore) change(ctx context.Context, orgID, userID string, edit func(d *subjectDoc) error) error {
	for range maxSubjectRetries {
		cur, err := s.latest(ctx, orgID, userID)
		if err != nil {
			return err
		}
		next := cur
		next.Assignments, next.Grants = slices.Clone(cur.Assignments), slices.Clone(cur.Grants)
		if err := edit(&next); err != nil {
			return err
		}
		next.Version++
		next.ID = versionID(orgID, userID, next.Version)
		next.OrgID, next.UserID = orgID, userID
		_, err = s.subjects.InsertOne(ctx, next)
		if mongo.IsDuplicateKeyError(err) {
			continue // a concurrent change wrote this version: try again on top of it
		}
		if err != nil {
			return fmt.Errorf("write assignments and grants: %w", err)
		}
		head := next
		head.ID = subjectKey(orgID, userID)
		// Only a hint: if the replace fails, reads find the version written above by looking
		// past the head, so its error changes nothing.
		_, _ = s.heads.ReplaceOne(ctx, mongox.ByID(head.ID), head, options.Replace().SetUpsert(true))
		return nil
	}
	return fmt.Errorf("write assignments and grants: %d concurrent changes in a row", maxSubjectRetries)
}

func sameAssignment(a, b Assignment) bool {
	return a.UserID == b.UserID && a.OrgID == b.OrgID && a.Role == b.Role && a.ProjectID == b.ProjectID
}

// Assign adds an assignment; the same user, org, role and project again is ErrAlreadyExists.
func (s *MongoStore) Assign(ctx context.Context, a Assignment) error {
	return s.change(ctx, a.OrgID, a.UserID, func(d *subjectDoc) error {
		if slices.ContainsFunc(d.Assignments, func(b Assignment) bool { return sameAssignment(a, b) }) {
			return fmt.Errorf("assignment: %w", ErrAlreadyExists)
		}
		d.Assignments = append(d.Assignments, a)
		return nil
	})
}

// Unassign removes the assignment with a's user, org, role and project.
func (s *MongoStore) Unassign(ctx context.Context, a Assignment) error {
	return s.change(ctx, a.OrgID, a.UserID, func(d *subjectDoc) error {
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
// many. It finds the subjects that held the role in any version (a scan on FerretDB: deleting
// a role is an administrator's act), then takes the role out of each one's latest version.
func (s *MongoStore) DeleteRoleAssignments(ctx context.Context, orgID, role string) (int, error) {
	docs, err := mongox.FindAll[subjectDoc](ctx, s.subjects,
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
		err := s.change(ctx, orgID, user, func(d *subjectDoc) error {
			before := len(d.Assignments)
			d.Assignments = slices.DeleteFunc(d.Assignments, func(a Assignment) bool { return a.Role == role })
			if n = before - len(d.Assignments); n == 0 {
				return errNothingToChange
			}
			return nil
		})
		if err != nil && !errors.Is(err, errNothingToChange) {
			return removed, fmt.Errorf("delete assignments of role: %w", err)
		}
		if err == nil {
			removed += n
		}
	}
	return removed, nil
}

// errNothingToChange stops a change that would write a version equal to the latest.
var errNothingToChange = errors.New("nothing to change")

// AddGrant adds a direct grant; the same user, org and permission again is ErrAlreadyExists.
func (s *MongoStore) AddGrant(ctx context.Context, g Grant) error {
	return s.change(ctx, g.OrgID, g.UserID, func(d *subjectDoc) error {
		if slices.ContainsFunc(d.Grants, func(h Grant) bool { return h.Permission == g.Permission }) {
			return fmt.Errorf("grant: %w", ErrAlreadyExists)
		}
		d.Grants = append(d.Grants, g)
		return nil
	})
}

// RemoveGrant removes the direct grant with g's user, org and permission.
func (s *MongoStore) RemoveGrant(ctx context.Context, g Grant) error {
	return s.change(ctx, g.OrgID, g.UserID, func(d *subjectDoc) error {
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
	byUser := bson.D{{Key: "user_id", Value: userID}}
	if _, err := s.subjects.DeleteMany(ctx, byUser); err != nil {
		return fmt.Errorf("erase assignments and grants: %w", err)
	}
	if _, err := s.heads.DeleteMany(ctx, byUser); err != nil {
		return fmt.Errorf("erase assignments and grants: %w", err)
	}
	return nil
}

// backfill moves the assignments and grants of a store made before rbac_subjects (one
// document each in rbac_assignments and rbac_grants) into a first version per subject, once.
func (s *MongoStore) backfill(ctx context.Context, db *mongo.Database) error {
	const marker = "meta:subjects-v1"
	if _, err := mongox.FindOne[subjectDoc](ctx, s.heads, mongox.ByID(marker), "subjects", ErrNotFound); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
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
	first := map[string]*subjectDoc{}
	doc := func(orgID, userID string) *subjectDoc {
		k := subjectKey(orgID, userID)
		if first[k] == nil {
			first[k] = &subjectDoc{ID: versionID(orgID, userID, 1), OrgID: orgID, UserID: userID, Version: 1}
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
	for _, d := range first {
		if _, err := s.subjects.InsertOne(ctx, d); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("backfill assignments: %w", err)
		}
	}
	if _, err := s.heads.InsertOne(ctx, bson.D{{Key: "_id", Value: marker}}); err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("backfill assignments: %w", err)
	}
	return nil
}
