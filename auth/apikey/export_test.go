package apikey

import "context"

// EnterOnly enters k in its user's set and writes no key record: a create interrupted between
// its two writes.
func (s *MongoStore) EnterOnly(ctx context.Context, k Key) error {
	_, err := s.enter(ctx, k)
	return err
}
