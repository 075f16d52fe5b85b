package oauth

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB). Every read is one _id look-up,
// the only filter FerretDB v1 answers without scanning the collection.
//
// Redeeming a code inserts its redemption record with the code's hash as _id, never an update
// of the code: FerretDB v1 runs an update as a read and a whole-document replace, so a
// conditional "redeem if unredeemed" would let several concurrent redemptions win, while a
// duplicate-key insert is atomic on every MongoDB-wire server.
//
// Like the other stores it has no TTL indexes (FerretDB v1 refuses expireAfterSeconds): an
// expired code is kept, and its reader decides, as GetCode promises, until Sweep deletes it.
type MongoStore struct {
	clients     *mongo.Collection
	codes       *mongo.Collection
	redemptions *mongo.Collection // one document per redeemed code: the record of redemption
	browsers    *mongo.Collection
	consents    *mongo.Collection // _id: consentID(user, client)
}

// consentDoc is a Consent with its _id.
type consentDoc struct {
	ID      string `bson:"_id"`
	Consent `bson:",inline"`
}

// consentID is a consent's _id: the user and the client, joined by a byte neither contains.
func consentID(userID, clientID string) string { return userID + "\x00" + clientID }

// redemption is the record that a code was redeemed; its _id is the code's hash.
type redemption struct {
	Hash string    `bson:"_id"`
	At   time.Time `bson:"redeemed_at"`
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its collections (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{
		clients:     db.Collection("oauth_clients"),
		codes:       db.Collection("oauth_codes"),
		redemptions: db.Collection("oauth_code_redemptions"),
		browsers:    db.Collection("oauth_browser_sessions"),
		consents:    db.Collection("oauth_consents"),
	}
	// Made now rather than at the first insert so that the embedded store indexes their _id
	// before the first authorization (it indexes only the collections that exist), and so that
	// the first concurrent redemptions do not each create the collection.
	if err := mongox.CreateCollections(ctx, db, s.clients.Name(), s.codes.Name(), s.redemptions.Name(), s.browsers.Name(),
		s.consents.Name()); err != nil {
		return nil, err
	}
	return s, nil
}

// CreateClient inserts the client; its id is the _id, so a taken id is a duplicate key.
func (s *MongoStore) CreateClient(ctx context.Context, c Client) error {
	_, err := s.clients.InsertOne(ctx, c)
	return mongox.InsertErr(err, "oauth client", storeerr.ErrAlreadyExists)
}

// GetClient finds a client by id.
func (s *MongoStore) GetClient(ctx context.Context, id string) (Client, error) {
	return mongox.FindOne[Client](ctx, s.clients, mongox.ByID(id), "oauth client", storeerr.ErrNotFound)
}

// DeleteClient deletes a client's record. Its codes are left to expire: they live a minute at
// most, and finding them would take a filter on client_id, which FerretDB v1 answers by a scan.
func (s *MongoStore) DeleteClient(ctx context.Context, id string) error {
	return mongox.DeleteByID(ctx, s.clients, id, "oauth client", storeerr.ErrNotFound)
}

// CreateCode inserts an issued code by its hash.
func (s *MongoStore) CreateCode(ctx context.Context, c Code) error {
	_, err := s.codes.InsertOne(ctx, c)
	return mongox.InsertErr(err, "oauth code", storeerr.ErrAlreadyExists)
}

// GetCode finds a code by its hash, expired or redeemed.
func (s *MongoStore) GetCode(ctx context.Context, hash string) (Code, error) {
	return mongox.FindOne[Code](ctx, s.codes, mongox.ByID(hash), "oauth code", storeerr.ErrNotFound)
}

// RedeemCode inserts the code's redemption record: of any number of concurrent redemptions the
// server lets one insert through, and every other is a duplicate key (ErrAlreadyExists).
func (s *MongoStore) RedeemCode(ctx context.Context, hash string, at time.Time) error {
	_, err := s.redemptions.InsertOne(ctx, redemption{Hash: hash, At: at})
	return mongox.InsertErr(err, "oauth code redemption", storeerr.ErrAlreadyExists)
}

// CreateBrowserSession inserts a browser session by its hash.
func (s *MongoStore) CreateBrowserSession(ctx context.Context, b BrowserSession) error {
	_, err := s.browsers.InsertOne(ctx, b)
	return mongox.InsertErr(err, "browser session", storeerr.ErrAlreadyExists)
}

// GetBrowserSession finds a browser session by hash, expired or not.
func (s *MongoStore) GetBrowserSession(ctx context.Context, hash string) (BrowserSession, error) {
	return mongox.FindOne[BrowserSession](ctx, s.browsers, mongox.ByID(hash), "browser session", storeerr.ErrNotFound)
}

// DeleteBrowserSession ends a browser session.
func (s *MongoStore) DeleteBrowserSession(ctx context.Context, hash string) error {
	return mongox.DeleteByID(ctx, s.browsers, hash, "browser session", storeerr.ErrNotFound)
}

// PutConsent replaces the user's consent for the client (a whole-document upsert by _id: the
// last answer wins, which is what a person changing their mind expects).
func (s *MongoStore) PutConsent(ctx context.Context, c Consent) error {
	id := consentID(c.UserID, c.ClientID)
	return mongox.ReplaceByID(ctx, s.consents, id, consentDoc{ID: id, Consent: c}, "consent")
}

// MarkClientUsed unsets the client's unused field.
func (s *MongoStore) MarkClientUsed(ctx context.Context, id string) error {
	_, err := s.clients.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "unused", Value: true}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "unused", Value: ""}}}})
	if err != nil {
		return fmt.Errorf("mark oauth client used: %w", err)
	}
	return nil
}

// Sweep deletes by range filters, which FerretDB v1 answers by reading the whole collection:
// a sweep costs a pass over each of the four, run rarely (hourly by default), and it is what
// keeps them small: codes and browser sessions that still work, a day of redemptions, a day
// of registrations.
func (s *MongoStore) Sweep(ctx context.Context, sw Sweep) (Swept, error) {
	var out Swept
	steps := []struct {
		c      *mongo.Collection
		filter bson.D
		n      *int64
	}{
		// Codes before their redemptions: a redemption never outlives the code it guards.
		{s.codes, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: sw.Expired}}}}, &out.Codes},
		{s.redemptions, bson.D{{Key: "redeemed_at", Value: bson.D{{Key: "$lt", Value: sw.Redeemed}}}}, &out.Redemptions},
		{s.browsers, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: sw.Expired}}}}, &out.BrowserSessions},
		{s.clients, bson.D{{Key: "unused", Value: true}, {Key: "created_at", Value: bson.D{{Key: "$lt", Value: sw.Unused}}}}, &out.Clients},
	}
	for _, st := range steps {
		r, err := st.c.DeleteMany(ctx, st.filter)
		if err != nil {
			return out, fmt.Errorf("sweep %s: %w", st.c.Name(), err)
		}
		*st.n = r.DeletedCount
	}
	return out, nil
}

// GetConsent reads the user's consent for the client.
func (s *MongoStore) GetConsent(ctx context.Context, userID, clientID string) (Consent, error) {
	d, err := mongox.FindOne[consentDoc](ctx, s.consents, mongox.ByID(consentID(userID, clientID)), "consent", storeerr.ErrNotFound)
	return d.Consent, err
}
