// Package deploy holds wsgate's Kubernetes manifests (the *.yaml files
// beside this one) and the kernel tuning notes for large nodes
// (TUNING.md). Its only code is manifests_test.go, which checks the
// manifests against the Kubernetes API fields they use and against
// wsgate's own configuration package and command line.
package deploy
