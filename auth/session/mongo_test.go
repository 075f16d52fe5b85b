package session_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/session/sessiontest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) session.Store {
		s, err := session.NewMongoStore(context.Background(), mongotest.Database(t))
		if err != nil {
			t.Fatalf("new mongo store: %v", err)
		}
		return s
	})
}
