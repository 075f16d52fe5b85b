package audit_test

import (
	"testing"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/audit/storetest"
)

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.Store { s, _ := newStore(t); return s })
}
