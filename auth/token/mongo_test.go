package token_test

import (
	"testing"

	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/auth/token/tokentest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	tokentest.Run(t, func(t *testing.T) token.KeyStore { return token.NewMongoStore(mongotest.Database(t)) })
}
