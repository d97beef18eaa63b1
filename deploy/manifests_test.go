package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/wsgate/wsgate/config"
)

// Without kubeconform (no network here), the manifests are checked in two
// layers. First every document is decoded strictly (unknown fields are
// errors) into Go types mirroring the subset of the Kubernetes API the
// manifests use, with the API server's own rules for the values they hold
// (names, ports, enums, quantities, probe fields). Then the pieces are
// checked against each other and against wsgate: the ConfigMap's
// wsgate.yaml through config.Parse, the probes and preStop hook against the
// admin address it configures, the grace period against its drain
// timeouts, the fd, memory and port budget against limits.max_tunnels, and
// (without -short) the command lines against the flags the built binary
// really has.

// ---- The Kubernetes API subset (field names as in k8s.io/api) ----

type typeMeta struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type namespace struct {
	typeMeta `yaml:",inline"`
}

type configMap struct {
	typeMeta `yaml:",inline"`
	Data     map[string]string `yaml:"data"`
}

type secret struct {
	typeMeta   `yaml:",inline"`
	Type       string            `yaml:"type"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

type service struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		Type                     string            `yaml:"type"`
		ClusterIP                string            `yaml:"clusterIP"`
		ExternalTrafficPolicy    string            `yaml:"externalTrafficPolicy"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		SessionAffinity          string            `yaml:"sessionAffinity"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
			NodePort   int         `yaml:"nodePort"`
			Protocol   string      `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		Replicas                *int          `yaml:"replicas"`
		RevisionHistoryLimit    *int          `yaml:"revisionHistoryLimit"`
		MinReadySeconds         int           `yaml:"minReadySeconds"`
		ProgressDeadlineSeconds *int          `yaml:"progressDeadlineSeconds"`
		Selector                labelSelector `yaml:"selector"`
		Strategy                struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxSurge       intOrString `yaml:"maxSurge"`
				MaxUnavailable intOrString `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	EnableServiceLinks            *bool  `yaml:"enableServiceLinks"`
	Affinity                      *struct {
		PodAntiAffinity *struct {
			Required []struct {
				TopologyKey   string         `yaml:"topologyKey"`
				LabelSelector *labelSelector `yaml:"labelSelector"`
			} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
	SecurityContext *struct {
		RunAsNonRoot   *bool           `yaml:"runAsNonRoot"`
		RunAsUser      *int64          `yaml:"runAsUser"`
		RunAsGroup     *int64          `yaml:"runAsGroup"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
		Sysctls        []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"sysctls"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name  string `yaml:"name"`
			Items []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             *struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *handler `yaml:"preStop"`
	} `yaml:"lifecycle"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type httpGet struct {
	Path string      `yaml:"path"`
	Port intOrString `yaml:"port"`
}

type handler struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	HTTPGet *httpGet `yaml:"httpGet"`
	Sleep   *struct {
		Seconds int `yaml:"seconds"`
	} `yaml:"sleep"`
}

type probe struct {
	handler             `yaml:",inline"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	SuccessThreshold    int `yaml:"successThreshold"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

type podDisruptionBudget struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int   `yaml:"stabilizationWindowSeconds"`
	SelectPolicy               string `yaml:"selectPolicy"`
	Policies                   []struct {
		Type          string `yaml:"type"`
		Value         int    `yaml:"value"`
		PeriodSeconds int    `yaml:"periodSeconds"`
	} `yaml:"policies"`
}

type horizontalPodAutoscaler struct {
	typeMeta `yaml:",inline"`
	Spec     struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource *struct {
				Name   string `yaml:"name"`
				Target struct {
					Type               string `yaml:"type"`
					AverageUtilization *int   `yaml:"averageUtilization"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
		Behavior *struct {
			ScaleUp   *hpaRules `yaml:"scaleUp"`
			ScaleDown *hpaRules `yaml:"scaleDown"`
		} `yaml:"behavior"`
	} `yaml:"spec"`
}

// intOrString is the API's IntOrString: ports by number or name, surge by
// count or percentage.
type intOrString struct {
	set   bool
	isStr bool
	i     int
	s     string
}

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want an integer or a string", n.Line)
	}
	v.set = true
	switch n.Tag {
	case "!!int":
		return n.Decode(&v.i)
	case "!!str":
		v.isStr, v.s = true, n.Value
		return nil
	}
	return fmt.Errorf("line %d: %q: want an integer or a string", n.Line, n.Value)
}

func (v intOrString) String() string {
	if v.isStr {
		return v.s
	}
	return strconv.Itoa(v.i)
}

// kinds are the objects deploy/ may hold, with the apiVersion each is
// served at (the stable ones: policy/v1 since 1.21, autoscaling/v2 since
// 1.23).
var kinds = map[string]struct {
	apiVersion string
	namespaced bool
	decode     func(*yaml.Decoder) (any, error)
}{
	"Namespace":               {"v1", false, decodeAs[namespace]},
	"ConfigMap":               {"v1", true, decodeAs[configMap]},
	"Secret":                  {"v1", true, decodeAs[secret]},
	"Service":                 {"v1", true, decodeAs[service]},
	"Deployment":              {"apps/v1", true, decodeAs[deployment]},
	"PodDisruptionBudget":     {"policy/v1", true, decodeAs[podDisruptionBudget]},
	"HorizontalPodAutoscaler": {"autoscaling/v2", true, decodeAs[horizontalPodAutoscaler]},
}

func decodeAs[T any](d *yaml.Decoder) (any, error) {
	v := new(T)
	err := d.Decode(v)
	return v, err
}

// ---- Loading ----

// object is one document of a manifest file.
type object struct {
	file     string // relative to deploy/
	line     int
	kind     string
	meta     objectMeta
	value    any  // *deployment, *service, ...
	topLevel bool // applied by `kubectl apply -f deploy/` (not recursive)
}

func (o object) String() string {
	return fmt.Sprintf("%s:%d: %s %s", o.file, o.line, o.kind, o.meta.Name)
}

type manifests struct {
	objects []object
}

func (m manifests) ofKind(kind string) []object {
	var out []object
	for _, o := range m.objects {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifests) find(kind, name string) (object, bool) {
	for _, o := range m.objects {
		if o.kind == kind && o.meta.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// loadManifests reads every *.yaml and *.yml file under deploy/: a first
// pass reads each document's kind, a second decodes it strictly as that
// kind, so that a misspelt field is an error with its line.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	var m manifests
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(p); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		objs, err := decodeFile(p, data)
		if err != nil {
			return err
		}
		m.objects = append(m.objects, objs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.objects) == 0 {
		t.Fatal("no manifests found")
	}
	return m
}

func decodeFile(file string, data []byte) ([]object, error) {
	var heads []object
	loose := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := loose.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		var tm typeMeta
		if err := n.Decode(&tm); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n.Line, err)
		}
		k, ok := kinds[tm.Kind]
		switch {
		case tm.Kind == "":
			return nil, fmt.Errorf("%s:%d: a document without kind", file, n.Line)
		case !ok:
			return nil, fmt.Errorf("%s:%d: kind %q: not one deploy/ should hold", file, n.Line, tm.Kind)
		case tm.APIVersion != k.apiVersion:
			return nil, fmt.Errorf("%s:%d: %s: apiVersion %q, want %q", file, n.Line, tm.Kind, tm.APIVersion, k.apiVersion)
		}
		heads = append(heads, object{
			file: file, line: n.Line, kind: tm.Kind, meta: tm.Metadata,
			topLevel: !strings.Contains(filepath.ToSlash(file), "/"),
		})
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	for i := range heads {
		v, err := kinds[heads[i].kind].decode(strict)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", file, heads[i].kind, heads[i].meta.Name, err)
		}
		heads[i].value = v
	}
	return heads, nil
}

// ---- The API server's value rules (k8s.io/apimachinery validation) ----

var (
	dns1035Label = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	labelName    = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	labelPrefix  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	envVarName   = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)
	ianaSvcName  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	quantity     = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
	percent      = regexp.MustCompile(`^[0-9]+%$`)
)

func checkLabels(what string, labels map[string]string, values bool) error {
	for k, v := range labels {
		prefix, name, has := strings.Cut(k, "/")
		if !has {
			prefix, name = "", k
		}
		if name == "" || len(name) > 63 || !labelName.MatchString(name) || (has && (len(prefix) > 253 || !labelPrefix.MatchString(prefix))) {
			return fmt.Errorf("%s key %q: not a qualified name", what, k)
		}
		if values && (len(v) > 63 || !labelName.MatchString(v)) {
			return fmt.Errorf("%s %q: value %q is not a valid label value", what, k, v)
		}
	}
	return nil
}

// portName is IANA_SVC_NAME: at most 15 characters, lower-case letters,
// digits and inner single hyphens, at least one letter.
func portName(s string) bool {
	return len(s) <= 15 && ianaSvcName.MatchString(s) && !strings.Contains(s, "--") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz")
}

func checkQuantity(s string) error {
	if !quantity.MatchString(s) {
		return fmt.Errorf("quantity %q: not a Kubernetes quantity", s)
	}
	return nil
}

// quantityValue reads a quantity as a number (bytes for memory, cores for
// CPU).
func quantityValue(s string) (float64, error) {
	m := quantity.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("quantity %q: not a Kubernetes quantity", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{
		"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60,
	}[m[3]]
	return f * mult, nil
}

func oneOf(what, v string, allowed ...string) error {
	if v != "" && !slices.Contains(allowed, v) {
		return fmt.Errorf("%s %q: want one of %s", what, v, strings.Join(allowed, ", "))
	}
	return nil
}

// safeSysctls are the sysctls a pod may set without the kubelet's
// --allowed-unsafe-sysctls (k8s.io/kubernetes pkg/kubelet/sysctl, as of
// 1.29; tcp_rmem and tcp_wmem joined in 1.32 and are left out so that the
// manifests run on older clusters too).
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
}

// ---- Generic checks: every object as the API server would take it ----

func TestManifestsAreValidObjects(t *testing.T) {
	m := loadManifests(t)
	namespaces := map[string]bool{}
	for _, o := range m.ofKind("Namespace") {
		namespaces[o.meta.Name] = true
	}
	seen := map[string]object{}
	for _, o := range m.objects {
		t.Run(o.file+"/"+o.kind+"/"+o.meta.Name, func(t *testing.T) {
			switch {
			case o.kind == "Service":
				if len(o.meta.Name) > 63 || !dns1035Label.MatchString(o.meta.Name) {
					t.Errorf("%v: name %q: want a DNS-1035 label", o, o.meta.Name)
				}
			case o.kind == "Namespace":
				if len(o.meta.Name) > 63 || !dns1123Label.MatchString(o.meta.Name) {
					t.Errorf("%v: name %q: want a DNS-1123 label", o, o.meta.Name)
				}
			case len(o.meta.Name) > 253 || !dns1123Label.MatchString(o.meta.Name):
				t.Errorf("%v: name %q: want a DNS-1123 name", o, o.meta.Name)
			}
			key := o.kind + "/" + o.meta.Namespace + "/" + o.meta.Name
			if prev, dup := seen[key]; dup {
				t.Errorf("%v: same object as %v", o, prev)
			}
			seen[key] = o
			switch {
			case kinds[o.kind].namespaced && !namespaces[o.meta.Namespace]:
				t.Errorf("%v: namespace %q: not defined in deploy/", o, o.meta.Namespace)
			case !kinds[o.kind].namespaced && o.meta.Namespace != "":
				t.Errorf("%v: a cluster-scoped object has no namespace", o)
			}
			if err := checkLabels("label", o.meta.Labels, true); err != nil {
				t.Errorf("%v: %v", o, err)
			}
			if err := checkLabels("annotation", o.meta.Annotations, false); err != nil {
				t.Errorf("%v: %v", o, err)
			}
			var errs []error
			switch v := o.value.(type) {
			case *deployment:
				errs = checkDeployment(v)
			case *service:
				errs = checkService(v)
			case *podDisruptionBudget:
				errs = checkPDB(v)
			case *horizontalPodAutoscaler:
				errs = checkHPA(v)
			case *secret:
				if err := oneOf("type", v.Type, "Opaque"); err != nil {
					errs = append(errs, err)
				}
			}
			for _, err := range errs {
				t.Errorf("%v: %v", o, err)
			}
		})
	}
}

// TestApplyOrder: `kubectl apply -f deploy/` applies the top-level files
// in name order, so the Namespace comes first; the Secret template and
// the optional pieces stay in subdirectories, so a placeholder token is
// never applied by accident.
func TestApplyOrder(t *testing.T) {
	m := loadManifests(t)
	first := ""
	for _, o := range m.objects {
		if o.topLevel && (first == "" || o.file < first) {
			first = o.file
		}
	}
	for _, o := range m.objects {
		switch {
		case o.kind == "Namespace" && (!o.topLevel || o.file != first):
			t.Errorf("%v: the Namespace must be in the first top-level file (%s)", o, first)
		case (o.kind == "Secret" || o.kind == "HorizontalPodAutoscaler") && o.topLevel:
			t.Errorf("%v: would be applied by kubectl apply -f deploy/; keep it in a subdirectory", o)
		}
	}
}

func checkDeployment(d *deployment) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := &d.Spec
	if s.Replicas != nil && *s.Replicas < 0 {
		add("replicas %d: want >= 0", *s.Replicas)
	}
	if len(s.Selector.MatchLabels) == 0 {
		add("selector: empty (apps/v1 requires one)")
	}
	if err := checkLabels("selector", s.Selector.MatchLabels, true); err != nil {
		errs = append(errs, err)
	}
	if !selects(s.Selector.MatchLabels, s.Template.Metadata.Labels) {
		add("selector %v does not match the template's labels %v", s.Selector.MatchLabels, s.Template.Metadata.Labels)
	}
	if err := oneOf("strategy.type", s.Strategy.Type, "RollingUpdate", "Recreate"); err != nil {
		errs = append(errs, err)
	}
	if ru := s.Strategy.RollingUpdate; ru != nil {
		for _, v := range []intOrString{ru.MaxSurge, ru.MaxUnavailable} {
			if v.isStr && !percent.MatchString(v.s) || !v.isStr && v.i < 0 {
				add("rollingUpdate %v: want a count >= 0 or a percentage", v)
			}
		}
		if !ru.MaxSurge.isStr && ru.MaxSurge.i == 0 && !ru.MaxUnavailable.isStr && ru.MaxUnavailable.i == 0 {
			add("rollingUpdate: maxSurge and maxUnavailable may not both be 0")
		}
	}
	if s.ProgressDeadlineSeconds != nil && *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
		add("progressDeadlineSeconds must be greater than minReadySeconds")
	}
	errs = append(errs, checkPodSpec(&s.Template.Spec)...)
	return errs
}

func checkPodSpec(p *podSpec) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.TerminationGracePeriodSeconds != nil && *p.TerminationGracePeriodSeconds < 0 {
		add("terminationGracePeriodSeconds: want >= 0")
	}
	if p.Affinity != nil && p.Affinity.PodAntiAffinity != nil {
		for _, term := range p.Affinity.PodAntiAffinity.Required {
			if term.TopologyKey == "" {
				add("podAntiAffinity: a required term needs a topologyKey")
			}
		}
	}
	if sc := p.SecurityContext; sc != nil {
		if sc.SeccompProfile != nil {
			if err := oneOf("seccompProfile.type", sc.SeccompProfile.Type, "RuntimeDefault", "Localhost", "Unconfined"); err != nil {
				errs = append(errs, err)
			}
		}
		for _, sy := range sc.Sysctls {
			if !slices.Contains(safeSysctls, sy.Name) {
				add("sysctl %s: not a safe sysctl; the pod would be rejected (SysctlForbidden) unless every kubelet allows it", sy.Name)
			}
		}
	}
	if len(p.Containers) == 0 {
		add("no containers")
	}
	volumes := map[string]bool{}
	for _, v := range p.Volumes {
		if !dns1123Label.MatchString(v.Name) || volumes[v.Name] {
			add("volume %q: want a unique DNS-1123 label", v.Name)
		}
		volumes[v.Name] = true
		if v.ConfigMap == nil {
			add("volume %q: no source", v.Name)
		}
	}
	names := map[string]bool{}
	for _, c := range p.Containers {
		if !dns1123Label.MatchString(c.Name) || names[c.Name] {
			add("container %q: want a unique DNS-1123 label", c.Name)
		}
		names[c.Name] = true
		if c.Image == "" {
			add("container %s: no image", c.Name)
		}
		if err := oneOf("imagePullPolicy", c.ImagePullPolicy, "Always", "IfNotPresent", "Never"); err != nil {
			errs = append(errs, err)
		}
		ports := map[string]bool{}
		for _, cp := range c.Ports {
			if cp.ContainerPort < 1 || cp.ContainerPort > 65535 {
				add("containerPort %d: want 1..65535", cp.ContainerPort)
			}
			if cp.Name != "" && (!portName(cp.Name) || ports[cp.Name]) {
				add("port name %q: want a unique IANA service name (at most 15 characters)", cp.Name)
			}
			ports[cp.Name] = true
			if err := oneOf("protocol", cp.Protocol, "TCP", "UDP", "SCTP"); err != nil {
				errs = append(errs, err)
			}
		}
		for _, e := range c.Env {
			if !envVarName.MatchString(e.Name) {
				add("env %q: not a valid variable name", e.Name)
			}
			if e.Value != "" && e.ValueFrom != nil {
				add("env %s: value and valueFrom are exclusive", e.Name)
			}
			if vf := e.ValueFrom; vf != nil && (vf.SecretKeyRef == nil || vf.SecretKeyRef.Name == "" || vf.SecretKeyRef.Key == "") {
				add("env %s: valueFrom needs a secretKeyRef with name and key", e.Name)
			}
		}
		for _, q := range []map[string]string{c.Resources.Requests, c.Resources.Limits} {
			for res, v := range q {
				if err := oneOf("resource", res, "cpu", "memory", "ephemeral-storage"); err != nil {
					errs = append(errs, err)
				}
				if err := checkQuantity(v); err != nil {
					errs = append(errs, err)
				}
			}
		}
		for res, lim := range c.Resources.Limits {
			if req, ok := c.Resources.Requests[res]; ok {
				l, _ := quantityValue(lim)
				r, _ := quantityValue(req)
				if r > l {
					add("resources: %s request %s exceeds its limit %s", res, req, lim)
				}
			}
		}
		for _, pr := range []struct {
			name     string
			p        *probe
			liveness bool
		}{{"readinessProbe", c.ReadinessProbe, false}, {"livenessProbe", c.LivenessProbe, true}} {
			if pr.p == nil {
				continue
			}
			if handlers(&pr.p.handler) != 1 || pr.p.Sleep != nil {
				add("%s: want exactly one of exec, httpGet", pr.name)
			}
			if pr.p.PeriodSeconds < 0 || pr.p.TimeoutSeconds < 0 || pr.p.FailureThreshold < 0 || pr.p.SuccessThreshold < 0 || pr.p.InitialDelaySeconds < 0 {
				add("%s: negative timing", pr.name)
			}
			if pr.liveness && pr.p.SuccessThreshold > 1 {
				add("%s: successThreshold must be 1 for liveness", pr.name)
			}
			if g := pr.p.HTTPGet; g != nil && !strings.HasPrefix(g.Path, "/") {
				add("%s: path %q must start with /", pr.name, g.Path)
			}
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && handlers(c.Lifecycle.PreStop) != 1 {
			add("preStop: want exactly one of exec, httpGet, sleep")
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				add("volumeMount %q: no such volume", vm.Name)
			}
			if !strings.HasPrefix(vm.MountPath, "/") {
				add("volumeMount %q: mountPath %q: want an absolute path", vm.Name, vm.MountPath)
			}
		}
	}
	return errs
}

func handlers(h *handler) int {
	n := 0
	if h.Exec != nil {
		n++
	}
	if h.HTTPGet != nil {
		n++
	}
	if h.Sleep != nil {
		n++
	}
	return n
}

func checkService(s *service) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	sp := &s.Spec
	if err := oneOf("type", sp.Type, "ClusterIP", "NodePort", "LoadBalancer", "ExternalName"); err != nil {
		errs = append(errs, err)
	}
	if err := oneOf("externalTrafficPolicy", sp.ExternalTrafficPolicy, "Cluster", "Local"); err != nil {
		errs = append(errs, err)
	}
	if sp.ExternalTrafficPolicy != "" && sp.Type != "LoadBalancer" && sp.Type != "NodePort" {
		add("externalTrafficPolicy: only for type NodePort or LoadBalancer")
	}
	if sp.ClusterIP == "None" && sp.Type != "" && sp.Type != "ClusterIP" {
		add("clusterIP None: only for type ClusterIP")
	}
	if err := oneOf("sessionAffinity", sp.SessionAffinity, "None", "ClientIP"); err != nil {
		errs = append(errs, err)
	}
	if len(sp.Ports) == 0 {
		add("no ports")
	}
	names := map[string]bool{}
	for _, p := range sp.Ports {
		if len(sp.Ports) > 1 && p.Name == "" {
			add("port %d: a Service with several ports names each", p.Port)
		}
		if p.Name != "" && (!dns1123Label.MatchString(p.Name) || names[p.Name]) {
			add("port name %q: want a unique DNS-1123 label", p.Name)
		}
		names[p.Name] = true
		if p.Port < 1 || p.Port > 65535 {
			add("port %d: want 1..65535", p.Port)
		}
		if p.TargetPort.isStr && !portName(p.TargetPort.s) || !p.TargetPort.isStr && p.TargetPort.set && (p.TargetPort.i < 1 || p.TargetPort.i > 65535) {
			add("targetPort %v: want 1..65535 or a port name", p.TargetPort)
		}
		if err := oneOf("protocol", p.Protocol, "TCP", "UDP", "SCTP"); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func checkPDB(p *podDisruptionBudget) []error {
	var errs []error
	if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
		errs = append(errs, errors.New("want exactly one of minAvailable and maxUnavailable"))
	}
	if len(p.Spec.Selector.MatchLabels) == 0 {
		errs = append(errs, errors.New("empty selector: it would cover every pod of the namespace"))
	}
	return errs
}

func checkHPA(h *horizontalPodAutoscaler) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := &h.Spec
	if s.MaxReplicas < 1 || s.MinReplicas != nil && (*s.MinReplicas < 1 || *s.MinReplicas > s.MaxReplicas) {
		add("want 1 <= minReplicas <= maxReplicas")
	}
	for _, mt := range s.Metrics {
		if mt.Type != "Resource" || mt.Resource == nil {
			add("metric type %q: only Resource metrics are used here", mt.Type)
			continue
		}
		if err := oneOf("resource", mt.Resource.Name, "cpu", "memory"); err != nil {
			errs = append(errs, err)
		}
		if err := oneOf("target.type", mt.Resource.Target.Type, "Utilization", "AverageValue"); err != nil {
			errs = append(errs, err)
		}
		if u := mt.Resource.Target.AverageUtilization; mt.Resource.Target.Type == "Utilization" && (u == nil || *u < 1) {
			add("Utilization target: want averageUtilization >= 1")
		}
	}
	if b := s.Behavior; b != nil {
		for _, r := range []*hpaRules{b.ScaleUp, b.ScaleDown} {
			if r == nil {
				continue
			}
			if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
				add("stabilizationWindowSeconds %d: want 0..3600", *w)
			}
			if err := oneOf("selectPolicy", r.SelectPolicy, "Max", "Min", "Disabled"); err != nil {
				errs = append(errs, err)
			}
			for _, p := range r.Policies {
				if err := oneOf("policy type", p.Type, "Pods", "Percent"); err != nil {
					errs = append(errs, err)
				}
				if p.Value < 1 || p.PeriodSeconds < 1 || p.PeriodSeconds > 1800 {
					add("policy %s: want value >= 1 and periodSeconds 1..1800", p.Type)
				}
			}
		}
	}
	return errs
}

// selects reports whether a selector's labels are all among labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ---- wsgate: the pieces against each other and against wsgate ----

// Figures the capacity checks use; deploy/TUNING.md shows where they come
// from.
const (
	// kernelPerTunnel is the kernel's memory for wsgate's two sockets of
	// an idle tunnel: half the 16–20 KB of Slab measured per proxied
	// tunnel (four sockets on loopback), rounded up. It is charged to the
	// pod's memory cgroup.
	kernelPerTunnel = 10_000
	// userPerTunnel is wsgate's own memory per idle tunnel (measured
	// 100–150 B of RSS).
	userPerTunnel = 150
	// memoryHeadroom leaves room above idle for bytes queued in socket
	// buffers towards slow peers.
	memoryHeadroom = 1.5
	// runtimeNofile is the smallest hard RLIMIT_NOFILE container runtimes
	// commonly give (systemd's default of 524,288; containerd 1.x gives
	// 1,048,576); Go raises the soft limit to it at start.
	runtimeNofile = 524_288
	// pipeFDs is the most fds the engine's pipe pool uses: at most 1,024
	// pipes of 2 fds (engine.pipeBudget), plus listeners, epoll and
	// eventfds, logs: otherFDs.
	pipeFDs  = 2 * 1024
	otherFDs = 256
	// portShare is the part of the ephemeral ports towards one backend
	// address a backend's max_conns may use: the rest is for TIME_WAIT
	// and the churn of reconnects.
	portShare = 0.8
	// defaultPortRange is the kernel's net.ipv4.ip_local_port_range, which a
	// pod's network namespace starts with.
	defaultPortRange = "32768 60999"
	// stopSlack is what engine.Server.Shutdown allows after drain_spread
	// and the close timeout before it closes whatever is left.
	stopSlack = time.Second
	// graceMargin is kept between wsgate's own stop and the SIGKILL.
	graceMargin = 10 * time.Second
	// ctlTimeout is `wsgate ctl`'s default --timeout.
	ctlTimeout = 10 * time.Second
)

// edge is the wsgate Deployment with what it refers to.
type edge struct {
	d          *deployment
	c          *container
	cfg        *config.Config
	cfgName    string
	configPath string
}

func loadEdge(t *testing.T, m manifests) edge {
	t.Helper()
	ds := m.ofKind("Deployment")
	if len(ds) != 1 {
		t.Fatalf("want one Deployment, found %d", len(ds))
	}
	d := ds[0].value.(*deployment)
	var c *container
	for i := range d.Spec.Template.Spec.Containers {
		if d.Spec.Template.Spec.Containers[i].Name == "wsgate" {
			c = &d.Spec.Template.Spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("Deployment: no container named wsgate")
	}
	e := edge{d: d, c: c}
	args := append(slices.Clone(c.Command), c.Args...)
	if len(args) < 2 || path.Base(args[0]) != "wsgate" || args[1] != "serve" {
		t.Fatalf("container command %q: want wsgate serve ...", args)
	}
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			e.configPath = args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			e.configPath = v
		}
	}
	if e.configPath == "" {
		t.Fatalf("container command %q: no --config", args)
	}
	e.cfg, e.cfgName = loadConfig(t, m, d, c, e.configPath)
	return e
}

// loadConfig finds the ConfigMap mounted where --config points and parses
// its wsgate.yaml with wsgate's config package.
func loadConfig(t *testing.T, m manifests, d *deployment, c *container, file string) (*config.Config, string) {
	t.Helper()
	dir, base := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	var vol string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == dir {
			vol = vm.Name
			if !vm.ReadOnly {
				t.Errorf("volumeMount %s: want readOnly", vm.Name)
			}
		}
	}
	if vol == "" {
		t.Fatalf("--config %s: no volume mounted at %s", file, dir)
	}
	var cmName, key string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name != vol || v.ConfigMap == nil {
			continue
		}
		cmName, key = v.ConfigMap.Name, base
		for _, it := range v.ConfigMap.Items {
			if it.Path == base {
				key = it.Key
			}
		}
	}
	if cmName == "" {
		t.Fatalf("volume %s: not a ConfigMap", vol)
	}
	o, ok := m.find("ConfigMap", cmName)
	if !ok {
		t.Fatalf("ConfigMap %s: not in deploy/", cmName)
	}
	data, ok := o.value.(*configMap).Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s: no key %s", cmName, key)
	}
	// The token comes from the Secret at run time; here it only has to be
	// set, or Validate warns that serve would refuse the admin address.
	if tokenEnv := tokenEnvOf(data); tokenEnv != "" {
		t.Setenv(tokenEnv, "test-token")
	}
	name := o.file + ":" + key
	cfg, warns, err := config.Parse([]byte(data), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range warns {
		t.Errorf("%s: warning: %v", name, w)
	}
	return cfg, name
}

// tokenEnvOf reads admin.token_env without the config package, which
// needs the variable set before it parses.
func tokenEnvOf(data string) string {
	var v struct {
		Admin struct {
			TokenEnv string `yaml:"token_env"`
		} `yaml:"admin"`
	}
	if yaml.Unmarshal([]byte(data), &v) != nil || v.Admin.TokenEnv == "" {
		return config.DefaultAdminTokenEnv
	}
	return v.Admin.TokenEnv
}

func (e edge) containerPort(p intOrString) (int, bool) {
	for _, cp := range e.c.Ports {
		if p.isStr && cp.Name == p.s || !p.isStr && cp.ContainerPort == p.i {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func (e edge) namedPort(name string) int {
	n, _ := e.containerPort(intOrString{set: true, isStr: true, s: name})
	return n
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// TestConfigMap: the embedded wsgate.yaml parses with wsgate's own config
// package, without warnings, and is the nginx recipe: least_conn over two
// backends, idle 300s, plus a route example.
func TestConfigMap(t *testing.T) {
	e := loadEdge(t, loadManifests(t))
	c := e.cfg
	if c.Timeouts.Idle != 300*time.Second {
		t.Errorf("%s: timeouts.idle %v: the recipe's proxy_read_timeout is 300s", e.cfgName, c.Timeouts.Idle)
	}
	recipe := false
	for _, p := range c.Pools {
		if p.Policy == "least_conn" && len(p.Backends) == 2 {
			recipe = true
		}
	}
	if !recipe {
		t.Errorf("%s: no least_conn pool of two backends (the recipe's upstream)", e.cfgName)
	}
	if len(c.Routes) < 2 {
		t.Errorf("%s: want a route example besides the catch-all", e.cfgName)
	}
	if len(c.Listeners) == 0 {
		t.Fatalf("%s: no listeners", e.cfgName)
	}
}

// TestDeploymentRunsWsgate: ports, token, probes, preStop and grace period
// agree with the configuration the pod runs.
func TestDeploymentRunsWsgate(t *testing.T) {
	m := loadManifests(t)
	e := loadEdge(t, m)
	cfg, c, spec := e.cfg, e.c, &e.d.Spec.Template.Spec

	wsPort, adminPort := e.namedPort("ws"), e.namedPort("admin")
	if wsPort == 0 || adminPort == 0 {
		t.Fatalf("container ports %+v: want ports named ws and admin", c.Ports)
	}
	if got := portOf(t, cfg.Listeners[0].Address); got != wsPort {
		t.Errorf("listeners[0] port %d, container port ws %d", got, wsPort)
	}
	if got := portOf(t, cfg.Admin.Address); got != adminPort {
		t.Errorf("admin.address port %d, container port admin %d", got, adminPort)
	}

	t.Run("admin token", func(t *testing.T) {
		host, _, _ := net.SplitHostPort(cfg.Admin.Address)
		a, err := netip.ParseAddr(host)
		if err != nil || !a.IsUnspecified() {
			t.Errorf("admin.address %q: want every address (0.0.0.0), for the kubelet's probes", cfg.Admin.Address)
		}
		if cfg.Admin.TokenEnv == "" {
			t.Fatal("admin.token_env: empty, but the admin API binds every address")
		}
		found := false
		for _, env := range c.Env {
			if env.Name != cfg.Admin.TokenEnv {
				continue
			}
			found = true
			if env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("env %s: want it from a Secret, not a literal", env.Name)
			}
			ref := env.ValueFrom.SecretKeyRef
			o, ok := m.find("Secret", ref.Name)
			if !ok {
				t.Fatalf("env %s: Secret %s is not in deploy/ (as a template)", env.Name, ref.Name)
			}
			s := o.value.(*secret)
			v, ok := s.StringData[ref.Key]
			if !ok {
				t.Fatalf("Secret %s: no key %s", ref.Name, ref.Key)
			}
			if !strings.Contains(v, "REPLACE_ME") {
				t.Errorf("Secret %s: key %s must hold a REPLACE_ME placeholder, never a real token", ref.Name, ref.Key)
			}
		}
		if !found {
			t.Errorf("container env: no %s (admin.token_env)", cfg.Admin.TokenEnv)
		}
	})

	t.Run("probes", func(t *testing.T) {
		for _, pr := range []struct {
			name, path string
			p          *probe
		}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
			if pr.p == nil || pr.p.HTTPGet == nil {
				t.Errorf("%s: want an httpGet of %s", pr.name, pr.path)
				continue
			}
			if pr.p.HTTPGet.Path != pr.path {
				t.Errorf("%s: path %s, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
			}
			if n, _ := e.containerPort(pr.p.HTTPGet.Port); n != adminPort {
				t.Errorf("%s: port %v, want the admin port %d", pr.name, pr.p.HTTPGet.Port, adminPort)
			}
		}
	})

	t.Run("preStop drains", func(t *testing.T) {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
			t.Fatal("no preStop exec hook")
		}
		cmd := c.Lifecycle.PreStop.Exec.Command
		if len(cmd) < 3 || cmd[0] != c.Command[0] || cmd[1] != "ctl" || cmd[2] != "node-drain" {
			t.Fatalf("preStop %q: want %s ctl node-drain ...", cmd, c.Command[0])
		}
		flags := flagValues(t, cmd[3:])
		admin := flags["admin"]
		host, _, err := net.SplitHostPort(admin)
		if a, perr := netip.ParseAddr(host); err != nil || perr != nil || !a.IsLoopback() {
			t.Errorf("preStop --admin %q: want the pod's own admin API on loopback", admin)
		} else if portOf(t, admin) != adminPort {
			t.Errorf("preStop --admin %q: want port %d", admin, adminPort)
		}
		for flag, want := range map[string]time.Duration{"deadline": cfg.Timeouts.Drain, "spread": cfg.Timeouts.DrainSpread} {
			got, err := time.ParseDuration(flags[flag])
			if err != nil || got != want {
				t.Errorf("preStop --%s %q: want %v, as the config's drain timeouts", flag, flags[flag], want)
			}
		}
		hook := ctlTimeout
		if v, ok := flags["timeout"]; ok {
			if hook, err = time.ParseDuration(v); err != nil {
				t.Errorf("preStop --timeout %q: %v", v, err)
			}
		}
		need := hook + cfg.Timeouts.Drain + cfg.Timeouts.DrainSpread + cfg.Timeouts.Close + stopSlack + graceMargin
		if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
			t.Errorf("terminationGracePeriodSeconds %v: want >= %v (preStop %v + drain %v + drain_spread %v + close %v + %v + margin %v)",
				derefOr(g, 30), need.Seconds(), hook, cfg.Timeouts.Drain, cfg.Timeouts.DrainSpread, cfg.Timeouts.Close, stopSlack, graceMargin)
		}
	})

	t.Run("security", func(t *testing.T) {
		psc, sc := spec.SecurityContext, c.SecurityContext
		if sc == nil {
			t.Fatal("container: no securityContext")
		}
		nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot || psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
		if !nonRoot {
			t.Error("runAsNonRoot: want true")
		}
		if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Error("pod runAsUser: want a non-zero uid (the image's nonroot user)")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("readOnlyRootFilesystem: want true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Error("allowPrivilegeEscalation: want false")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Error("capabilities: want drop ALL and nothing added")
		}
	})

	t.Run("capacity", func(t *testing.T) {
		tunnels := cfg.Limits.MaxTunnels
		if tunnels <= 0 {
			t.Fatal("limits.max_tunnels: want a cap sized to the pod's memory and fds")
		}
		for _, res := range []string{"cpu", "memory"} {
			if _, ok := c.Resources.Requests[res]; !ok {
				t.Errorf("resources.requests.%s: missing", res)
			}
		}
		lim, ok := c.Resources.Limits["memory"]
		if !ok {
			t.Fatal("resources.limits.memory: missing")
		}
		mem, _ := quantityValue(lim)
		if need := float64(tunnels) * (kernelPerTunnel + userPerTunnel) * memoryHeadroom; mem < need {
			t.Errorf("memory limit %s (%.0f B) < max_tunnels %d x (%d + %d B) x %.1f = %.0f B", lim, mem, tunnels, kernelPerTunnel, userPerTunnel, memoryHeadroom, need)
		}
		if fds := 2*tunnels + pipeFDs + otherFDs; fds > runtimeNofile {
			t.Errorf("max_tunnels %d needs %d fds, more than the runtimes' default hard limit %d (deploy/TUNING.md, nofile)", tunnels, fds, runtimeNofile)
		}

		portRange := defaultPortRange
		if psc := spec.SecurityContext; psc != nil {
			for _, sy := range psc.Sysctls {
				if sy.Name == "net.ipv4.ip_local_port_range" {
					portRange = sy.Value
				}
			}
		}
		lo, hi, err := parseRange(portRange)
		if err != nil {
			t.Fatalf("ip_local_port_range %q: %v", portRange, err)
		}
		sources := max(1, len(cfg.Tunnel.SourceAddrs))
		perBackend := int(float64((hi-lo+1)*sources) * portShare)
		for name, p := range cfg.Pools {
			for _, b := range p.Backends {
				if b.MaxConns <= 0 || b.MaxConns > perBackend {
					t.Errorf("pools.%s backend %s: max_conns %d, want 1..%d: (%d ports x %d source addresses) x %.1f",
						name, b.Address, b.MaxConns, perBackend, hi-lo+1, sources, portShare)
				}
			}
		}
	})
}

func derefOr(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

func parseRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, errors.New("want two ports")
	}
	if lo, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, err
	}
	if hi, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, err
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, errors.New("want 1 <= low <= high <= 65535")
	}
	return lo, hi, nil
}

// flagValues reads --name value and --name=value pairs.
func flagValues(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			t.Fatalf("argument %q: want --flag", args[i])
		}
		if n, v, eq := strings.Cut(name, "="); eq {
			out[n] = v
			continue
		}
		if i+1 >= len(args) {
			t.Fatalf("--%s: no value", name)
		}
		out[name] = args[i+1]
		i++
	}
	return out
}

// TestServicesAndBudgets: the Services and the PodDisruptionBudget select
// the wsgate pods and reach their ports; the HPA scales the Deployment.
func TestServicesAndBudgets(t *testing.T) {
	m := loadManifests(t)
	e := loadEdge(t, m)
	pods := e.d.Spec.Template.Metadata.Labels
	var lb, admin int
	for _, o := range m.ofKind("Service") {
		s := o.value.(*service)
		if !selects(s.Spec.Selector, pods) {
			t.Errorf("%v: selector %v does not select the wsgate pods %v", o, s.Spec.Selector, pods)
		}
		for _, p := range s.Spec.Ports {
			n, ok := e.containerPort(p.TargetPort)
			if !ok {
				t.Errorf("%v: targetPort %v: no such container port", o, p.TargetPort)
			}
			switch {
			case s.Spec.Type == "LoadBalancer" && n == e.namedPort("ws"):
				lb++
				if s.Spec.ExternalTrafficPolicy != "Local" {
					t.Errorf("%v: externalTrafficPolicy %q, want Local (client addresses, no second hop)", o, s.Spec.ExternalTrafficPolicy)
				}
			case n == e.namedPort("admin"):
				admin++
				if s.Spec.Type != "" && s.Spec.Type != "ClusterIP" {
					t.Errorf("%v: the admin API must not leave the cluster (type %s)", o, s.Spec.Type)
				}
				if !s.Spec.PublishNotReadyAddresses {
					t.Errorf("%v: a drained pod fails /readyz and must stay reachable: want publishNotReadyAddresses", o)
				}
			}
		}
	}
	if lb != 1 || admin != 1 {
		t.Errorf("want one LoadBalancer Service for clients and one ClusterIP Service for admin, found %d and %d", lb, admin)
	}
	pdbs := m.ofKind("PodDisruptionBudget")
	if len(pdbs) != 1 {
		t.Fatalf("want one PodDisruptionBudget, found %d", len(pdbs))
	}
	if p := pdbs[0].value.(*podDisruptionBudget); !selects(p.Spec.Selector.MatchLabels, pods) {
		t.Errorf("%v: does not select the wsgate pods", pdbs[0])
	}
	for _, o := range m.ofKind("HorizontalPodAutoscaler") {
		h := o.value.(*horizontalPodAutoscaler)
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" {
			t.Errorf("%v: scaleTargetRef %s/%s, want apps/v1 Deployment", o, ref.APIVersion, ref.Kind)
		}
		if _, ok := m.find("Deployment", ref.Name); !ok {
			t.Errorf("%v: scaleTargetRef %s: no such Deployment", o, ref.Name)
		}
		if _, ok := e.c.Resources.Requests["cpu"]; !ok {
			t.Errorf("%v: a CPU target needs the container's CPU request", o)
		}
	}
}

// TestCommandLines builds wsgate and checks that the commands the
// manifests run use flags it has.
func TestCommandLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the wsgate binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build wsgate with")
	}
	e := loadEdge(t, loadManifests(t))
	bin := filepath.Join(t.TempDir(), "wsgate")
	build := exec.Command(gobin, "build", "-o", bin, "./cmd/wsgate")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wsgate: %v\n%s", err, out)
	}
	flagsOf := func(t *testing.T, args ...string) []string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--help")...).CombinedOutput()
		if err != nil {
			t.Fatalf("wsgate %s --help: %v\n%s", strings.Join(args, " "), err, out)
		}
		var names []string
		for _, m := range regexp.MustCompile(`(?m)^\s+--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
			names = append(names, m[1])
		}
		return names
	}
	used := func(args []string) []string {
		var names []string
		for _, a := range args {
			if n, ok := strings.CutPrefix(a, "--"); ok {
				n, _, _ = strings.Cut(n, "=")
				names = append(names, n)
			}
		}
		return names
	}

	t.Run("preStop", func(t *testing.T) {
		cmd := e.c.Lifecycle.PreStop.Exec.Command
		have := flagsOf(t, cmd[1:3]...)
		for _, f := range used(cmd[3:]) {
			if !slices.Contains(have, f) {
				t.Errorf("preStop: wsgate %s has no --%s (it has %v)", strings.Join(cmd[1:3], " "), f, have)
			}
		}
	})
	t.Run("serve", func(t *testing.T) {
		args := append(slices.Clone(e.c.Command[1:]), e.c.Args...)
		have := flagsOf(t, args[0])
		if !slices.Contains(have, "config") {
			t.Skip("wsgate serve has no --config yet (issue 7): the Deployment needs it")
		}
		for _, f := range used(args[1:]) {
			if !slices.Contains(have, f) {
				t.Errorf("container args: wsgate serve has no --%s", f)
			}
		}
	})
}
