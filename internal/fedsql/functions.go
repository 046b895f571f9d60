package fedsql

import (
	"maps"
	"slices"
	"strings"
)

// allowedFunctions are the ClickHouse functions a query may call (lower
// case): arithmetic, comparisons, conditionals, conversions, strings, dates,
// arrays and aggregates over the rows the federation reads. A function not
// listed is refused, so one that reaches outside the warehouse (remote, url,
// file, s3, dictGet …), stalls it (sleep) or reads the server's state
// (currentUser …) can never be called.
var allowedFunctions = setOf(
	// arithmetic and operators as functions
	"plus", "minus", "multiply", "divide", "intdiv", "intdivorzero", "modulo", "negate", "abs", "gcd", "lcm",
	"equals", "notequals", "less", "greater", "lessorequals", "greaterorequals", "and", "or", "not", "xor",
	"round", "floor", "ceil", "ceiling", "trunc", "truncate", "roundtoexp2", "sqrt", "cbrt", "exp", "exp2",
	"exp10", "log", "ln", "log2", "log10", "pow", "power", "sin", "cos", "tan", "asin", "acos", "atan", "pi", "e",
	"erf", "erfc", "lgamma", "tgamma", "greatest", "least",
	// conditionals and nulls
	"if", "multiif", "ifnull", "nullif", "coalesce", "isnull", "isnotnull", "assumenotnull", "tonullable",
	// conversions
	"tostring", "tofixedstring", "toint8", "toint16", "toint32", "toint64", "touint8", "touint16", "touint32",
	"touint64", "tofloat32", "tofloat64", "todate", "todatetime", "touuid", "todecimal32", "todecimal64",
	"todecimal128", "toint32orzero", "toint64orzero", "touint32orzero", "touint64orzero", "tofloat32orzero",
	"tofloat64orzero", "toint32ornull", "toint64ornull", "tofloat64ornull", "todateorzero", "todatetimeorzero",
	"totypename",
	// strings
	"length", "lengthutf8", "char_length", "character_length", "empty", "notempty", "lower", "upper", "lcase",
	"ucase", "lowerutf8", "upperutf8", "reverse", "reverseutf8", "concat", "substring", "substr", "substringutf8",
	"position", "positioncaseinsensitive", "positionutf8", "startswith", "endswith", "like", "notlike", "match",
	"extract", "replaceone", "replaceall", "replace", "replaceregexpone", "replaceregexpall", "trimleft",
	"trimright", "trimboth", "splitbychar", "splitbystring", "arraystringconcat",
	// dates and times
	"now", "today", "yesterday", "toyear", "toquarter", "tomonth", "todayofyear", "todayofmonth", "todayofweek",
	"tohour", "tominute", "tosecond", "tomonday", "tostartofyear", "tostartofquarter", "tostartofmonth",
	"tostartofday", "tostartofhour", "tostartofminute", "tostartoffiveminute", "tostartoffifteenminutes",
	"toyyyymm", "toyyyymmdd", "toyyyymmddhhmmss", "tounixtimestamp", "formatdatetime", "torelativeyearnum",
	"torelativemonthnum", "torelativeweeknum", "torelativedaynum", "torelativehournum", "addseconds",
	"addminutes", "addhours", "adddays", "addweeks", "addmonths", "addyears", "subtractseconds",
	"subtractminutes", "subtracthours", "subtractdays", "subtractweeks", "subtractmonths", "subtractyears",
	"timeslot", "toiso8601", "datediff", "date_diff",
	// arrays and tuples
	"array", "has", "hasall", "hasany", "indexof", "countequal", "arrayelement", "arrayconcat", "arrayslice",
	"arrayuniq", "arraydistinct", "arrayenumerate", "arrayreverse", "arraysum", "arraypushback",
	"arraypushfront", "tuple", "tupleelement", "range", "arraymap", "arrayfilter", "arrayexists", "arrayall",
	"arraycount", "arraysort", "arrayreversesort", "arrayfirst", "arrayfirstindex", "arraycumsum", "arrayjoin",
	"arraymin", "arraymax", "arrayavg", "arrayproduct", "arraycompact", "arrayzip", "arrayflatten",
	"arrayintersect", "arrayresize", "arraypopback", "arraypopfront", "emptyarrayuint32", "emptyarrayfloat64",
	"arraydifference", "arrayenumerateuniq", "notempty", "length",
	// hashes
	"cityhash64", "siphash64", "inthash32", "inthash64", "murmurhash2_64", "murmurhash3_64",
	// aggregates
	"count", "sum", "avg", "min", "max", "any", "anylast", "anyheavy", "argmin", "argmax", "uniq", "uniqexact",
	"uniqcombined", "uniqhll12", "median", "medianexact", "quantile", "quantiles", "quantileexact",
	"quantilesexact", "quantiletiming", "quantiletdigest", "stddevpop", "stddevsamp", "varpop", "varsamp",
	"covarpop", "covarsamp", "corr", "grouparray", "groupuniqarray", "topk", "summap", "countif", "sumif",
	"avgif", "minif", "maxif", "uniqif", "uniqexactif", "anyif", "argminif", "argmaxif", "medianif",
	"quantileif", "grouparrayif", "groupbitand", "groupbitor", "groupbitxor",
)

// aggregates are the allowlisted aggregate functions (lower case). With
// the combinators If, Array, OrNull and OrDefault they are aggregates too
// (countIf, sumArray); the compiler adds -State on the nodes and -Merge on
// the hub.
var aggregates = setOf(slices.Collect(maps.Keys(aggregateNames))...)

// aggregateNames spells each allowlisted aggregate (by its lower-case
// name) as ClickHouse does: a -State or -Merge of it must be spelt so,
// whatever case the query wrote it in (COUNTState is unknown).
var aggregateNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"count", "sum", "avg", "min", "max", "any", "anyLast", "anyHeavy", "argMin", "argMax", "uniq", "uniqExact",
		"uniqCombined", "uniqHLL12", "median", "medianExact", "quantile", "quantiles", "quantileExact",
		"quantilesExact", "quantileTiming", "quantileTDigest", "quantileDeterministic", "quantileExactWeighted",
		"stddevPop", "stddevSamp", "varPop", "varSamp", "covarPop", "covarSamp", "corr", "groupArray",
		"groupUniqArray", "topK", "sumMap", "groupBitAnd", "groupBitOr", "groupBitXor", "histogram",
		"sumMapFiltered", "avgWeighted", "skewPop", "skewSamp", "kurtPop", "kurtSamp", "sumWithOverflow",
		"simpleLinearRegression",
	} {
		m[strings.ToLower(n)] = n
	}
	return m
}()

// combinators are the aggregate combinators a query may use.
var combinators = []string{"if", "array", "ornull", "ordefault"}

// isAggregate reports whether name (lower case) is an allowlisted
// aggregate, with or without combinators.
func isAggregate(name string) bool {
	for {
		if aggregates[name] {
			return true
		}
		cut := false
		for _, c := range combinators {
			if len(name) > len(c) && name[len(name)-len(c):] == c {
				name, cut = name[:len(name)-len(c)], true
				break
			}
		}
		if !cut {
			return false
		}
	}
}

// hasStateOrMerge reports an aggregate the user wrote with the -State or
// -Merge combinator, which only the compiler writes.
func hasStateOrMerge(name string) bool {
	for _, suffix := range []string{"state", "merge", "mergestate", "resample", "foreach"} {
		if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix && isAggregate(name[:len(name)-len(suffix)]) {
			return true
		}
	}
	return false
}

// compiledFunction reports whether the compiled statement may call name:
// an allowlisted function, an aggregate, an aggregate's -State or -Merge,
// or materialize.
func compiledFunction(name string) bool {
	// materialize is the compiler's own, for the nodes' constant columns.
	if allowedFunctions[name] || isAggregate(name) || name == "materialize" {
		return true
	}
	for _, suffix := range []string{"state", "merge"} {
		if len(name) > len(suffix) && name[len(name)-len(suffix):] == suffix && isAggregate(name[:len(name)-len(suffix)]) {
			return true
		}
	}
	return false
}

var intervalUnits = setOf("second", "minute", "hour", "day", "week", "month", "quarter", "year")

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
