// Package deploy holds checks that the production deployment files agree
// with the code.
package deploy
