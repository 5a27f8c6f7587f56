//go:build ignore

// gen_icon draws assets/icon.png: a blue rounded square with a white envelope and an
// orange "automation" arrow. Run `go run assets/gen_icon.go` from the repository root.
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const size = 512

func main() {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	blue := color.NRGBA{0x1f, 0x5f, 0xbf, 0xff}
	white := color.NRGBA{0xff, 0xff, 0xff, 0xff}
	line := color.NRGBA{0x9d, 0xb9, 0xe6, 0xff}
	orange := color.NRGBA{0xff, 0x9a, 0x1f, 0xff}
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			if inRounded(x, y, 24, 24, size-24, size-24, 96) {
				img.Set(x, y, blue)
			}
		}
	}
	// Envelope body.
	x0, y0, x1, y1 := 96, 150, 416, 362
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			img.Set(x, y, white)
		}
	}
	// Flap: two lines from the top corners to the centre.
	cx, cy := float64(x0+x1)/2, 270.0
	drawLine(img, float64(x0), float64(y0), cx, cy, 10, line)
	drawLine(img, float64(x1), float64(y0), cx, cy, 10, line)
	// Circular arrow (automation) at the lower right.
	ox, oy, r := 378.0, 366.0, 62.0
	for a := 0.35; a < 2*math.Pi-0.55; a += 0.002 {
		disc(img, ox+r*math.Cos(a), oy+r*math.Sin(a), 13, orange)
	}
	// Arrow head at the end of the arc.
	end := 2*math.Pi - 0.55
	ex, ey := ox+r*math.Cos(end), oy+r*math.Sin(end)
	for i := 0.0; i < 30; i++ {
		disc(img, ex+i*0.7, ey-30+i, 7, orange)
		disc(img, ex-30+i, ey-i*0.3, 7, orange)
	}
	f, err := os.Create("assets/icon.png")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
}

func inRounded(x, y, x0, y0, x1, y1, r int) bool {
	if x < x0 || x > x1 || y < y0 || y > y1 {
		return false
	}
	cx := min(max(x, x0+r), x1-r)
	cy := min(max(y, y0+r), y1-r)
	dx, dy := x-cx, y-cy
	return dx*dx+dy*dy <= r*r
}

func drawLine(img *image.NRGBA, x0, y0, x1, y1, w float64, c color.NRGBA) {
	n := int(math.Hypot(x1-x0, y1-y0))
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		disc(img, x0+(x1-x0)*t, y0+(y1-y0)*t, w/2, c)
	}
}

func disc(img *image.NRGBA, cx, cy, r float64, c color.NRGBA) {
	for y := int(cy - r); y <= int(cy+r); y++ {
		for x := int(cx - r); x <= int(cx+r); x++ {
			if (float64(x)-cx)*(float64(x)-cx)+(float64(y)-cy)*(float64(y)-cy) <= r*r {
				img.Set(x, y, c)
			}
		}
	}
}
