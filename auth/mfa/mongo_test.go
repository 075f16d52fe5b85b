package mfa_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/mfa/mfatest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	mfatest.Run(t, func(t *testing.T) mfa.Store {
		s, err := mfa.NewMongoStore(context.Background(), mongotest.Database(t))
		if err != nil {
			t.Fatalf("new mongo store: %v", err)
		}
		return s
	})
}
