package clickhouse

import (
	"errors"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse exception codes the federation tells apart (the same numbers
// on 18.16 and current releases).
const (
	CodeCannotParseText            int32 = 6
	CodeParameterOutOfBound        int32 = 12
	CodeNoSuchColumnInTable        int32 = 16
	CodeCannotParseInputAssertion  int32 = 27
	CodeBadArguments               int32 = 36
	CodeCannotParseDate            int32 = 38
	CodeCannotParseDateTime        int32 = 41
	CodeNotImplemented             int32 = 48
	CodeCannotParseNumber          int32 = 72
	CodeIllegalIndex               int32 = 127
	CodeSizesOfArraysDoNotMatch    int32 = 190
	CodeCannotParseUUID            int32 = 376
	CodeCannotCompileRegexp        int32 = 427
	CodeAttemptToReadAfterEOF      int32 = 32
	CodeNumberOfArgumentsMismatch  int32 = 42
	CodeIllegalTypeOfArgument      int32 = 43
	CodeIllegalColumn              int32 = 44
	CodeUnknownFunction            int32 = 46
	CodeUnknownIdentifier          int32 = 47
	CodeTypeMismatch               int32 = 53
	CodeUnknownTable               int32 = 60
	CodeSyntaxError                int32 = 62
	CodeArgumentOutOfBound         int32 = 69
	CodeCannotConvertType          int32 = 70
	CodeUnknownDatabase            int32 = 81
	CodeUnexpectedPacket           int32 = 101
	CodeIllegalDivision            int32 = 153
	CodeTooManyRows                int32 = 158
	CodeSetSizeLimitExceeded       int32 = 191
	CodeTimeoutExceeded            int32 = 159
	CodeTooDeepAST                 int32 = 167
	CodeTooBigAST                  int32 = 168
	CodeIllegalAggregation         int32 = 184
	CodeTooManySimultaneousQueries int32 = 202
	CodeSocketTimeout              int32 = 209
	CodeNetworkError               int32 = 210
	CodeNotAnAggregate             int32 = 215
	CodeMemoryLimitExceeded        int32 = 241
	CodeAllConnectionTriesFailed   int32 = 279
	CodeTooDeepRecursion           int32 = 306
	CodeTooManyBytes               int32 = 307
	CodeTooManyRowsOrBytes         int32 = 396
	CodeFunctionThrowIfValue       int32 = 395
	CodeAggregateInWrongPlace      int32 = 386
	CodeQueryWasCancelled          int32 = 394
)

// Code returns the code of the ClickHouse exception err holds, or 0.
func Code(err error) int32 {
	var ex *ch.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	return 0
}

// IsNetwork reports whether err is a ClickHouse exception about a
// connection between servers: a remote() peer that refused, stalled, or
// broke the connection. Such an error says a node failed, not which one.
func IsNetwork(err error) bool {
	switch Code(err) {
	case CodeAllConnectionTriesFailed, CodeNetworkError, CodeSocketTimeout, CodeAttemptToReadAfterEOF,
		CodeUnexpectedPacket, CodeTimeoutExceeded:
		return true
	}
	return false
}

// IsQueryFault reports whether err is an exception the query itself caused
// (its text, its types, the values it computes or the resources it asks
// for): the client's mistake, not the warehouse's.
func IsQueryFault(err error) bool {
	switch Code(err) {
	case CodeSyntaxError, CodeIllegalTypeOfArgument, CodeIllegalColumn, CodeUnknownFunction, CodeUnknownIdentifier,
		CodeTypeMismatch, CodeNotAnAggregate, CodeIllegalAggregation, CodeAggregateInWrongPlace,
		CodeNumberOfArgumentsMismatch, CodeArgumentOutOfBound, CodeCannotConvertType, CodeIllegalDivision,
		CodeFunctionThrowIfValue, CodeTooDeepAST, CodeTooBigAST, CodeTooDeepRecursion, CodeMemoryLimitExceeded,
		CodeTooManyRows, CodeTooManyBytes, CodeTooManyRowsOrBytes, CodeSetSizeLimitExceeded,
		// Values and arguments the query gives that ClickHouse cannot use.
		CodeCannotParseText, CodeParameterOutOfBound, CodeCannotParseInputAssertion, CodeBadArguments,
		CodeCannotParseDate, CodeCannotParseDateTime, CodeNotImplemented, CodeCannotParseNumber, CodeIllegalIndex,
		CodeSizesOfArraysDoNotMatch, CodeCannotParseUUID, CodeCannotCompileRegexp:
		return true
	}
	return false
}

// IsMissing reports whether err is an exception about something the query
// names that does not exist: a database, a table or a column.
func IsMissing(err error) bool {
	switch Code(err) {
	case CodeUnknownTable, CodeUnknownDatabase, CodeNoSuchColumnInTable, CodeUnknownIdentifier:
		return true
	}
	return false
}
