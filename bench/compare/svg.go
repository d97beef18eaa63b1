package main

import (
	"fmt"
	"html"
	"strings"
)

// colors per target: wsgate's modes in blues, the others apart.
var colors = map[string]string{
	"direct":        "#9e9e9e",
	"wsgate":        "#1f4e9c",
	"wsgate-splice": "#3d7fd9",
	"wsgate-copy":   "#8ab6ee",
	"nginx":         "#2e9a4a",
	"haproxy":       "#e08a1e",
}

// renderSVG draws one panel per metric, a bar per target, each bar
// labelled with its value and its ratio to nginx. Hand-made SVG: no
// fonts, scripts or anything fetched.
func renderSVG(env runEnv, results []result) string {
	rounds := 1
	for _, r := range results {
		rounds = max(rounds, len(r.Rounds))
	}
	const (
		cols    = 2
		panelW  = 480
		labelW  = 110
		barMax  = 230
		rowH    = 22
		headH   = 56
		padTop  = 34
		padBot  = 14
		marginX = 10
	)
	panelH := padTop + rowH*len(results) + padBot
	rows := (len(metrics) + cols - 1) / cols
	width := marginX*2 + cols*panelW
	height := headH + rows*panelH + 10
	nginx, haveNginx := find(results, "nginx")

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">wsgate vs direct, nginx %s and HAProxy %s</text>`+"\n", marginX, esc(env.Nginx), esc(env.HAProxy))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%s, %d CPUs, load %s at start (shared machine: noisy); medians of %d rounds; ratios are to nginx in the same run</text>`+"\n",
		marginX, esc(env.Date), env.CPUs, esc(env.LoadStart), rounds)
	for mi, m := range metrics {
		x0 := marginX + (mi%cols)*panelW
		y0 := headH + (mi/cols)*panelH
		better := "higher is better"
		if !m.Higher {
			better = "lower is better"
		}
		title := m.Short
		if m.Unit != "" && m.Unit != "s" && !strings.Contains(title, m.Unit) {
			title += " (" + m.Unit + ")"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#f7f7f9" stroke="#ddd"/>`+"\n", x0+2, y0+2, panelW-6, panelH-6)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s <tspan font-weight="normal" fill="#777">— %s</tspan></text>`+"\n", x0+10, y0+22, esc(title), better)
		top := 0.0
		for _, r := range results {
			if v, ok := m.Get(r); ok && v > top {
				top = v
			}
		}
		for ri, r := range results {
			y := y0 + padTop + ri*rowH
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x0+labelW, y+14, esc(r.Target))
			v, ok := m.Get(r)
			if !ok {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#999">—</text>`+"\n", x0+labelW+8, y+14)
				continue
			}
			w := 0.0
			if top > 0 {
				w = v / top * barMax
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0+labelW+6, y+3, max(w, 1), rowH-6, colors[r.Target])
			label := fmt.Sprintf(m.Format, v)
			if haveNginx && r.Target != "nginx" {
				if x, ok := ratioOf(m, r, nginx); ok {
					label += fmt.Sprintf("  %.2f×", x)
				}
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(x0+labelW+10)+max(w, 1), y+14, esc(label))
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }
