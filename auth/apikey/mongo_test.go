package apikey_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/apikey/apikeytest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	apikeytest.Run(t, func(t *testing.T) apikey.Store {
		s, err := apikey.NewMongoStore(context.Background(), mongotest.Database(t))
		if err != nil {
			t.Fatalf("new mongo store: %v", err)
		}
		return s
	})
}
