package manifests_test

import (
	"fmt"

	"github.com/sluicehq/sluice/manifests"
)

func ExampleLoad() {
	lookup := func(name string) (string, bool) { return "", false } // an empty environment
	pipelines, diags := manifests.Load([]string{"testdata/bad/missing_env.yaml"}, manifests.LoadOptions{Catalog: testCatalog, LookupEnv: lookup})
	fmt.Println(len(pipelines), "pipelines")
	fmt.Println(diags[0])
	// Output:
	// 0 pipelines
	// testdata/bad/missing_env.yaml:9:13: ${env:PRICES_DIR}: environment variable PRICES_DIR is not set
	//     hint: export it, or use ${file:PATH}
}

func ExampleConfigJSON() {
	config := "max_price: 250.50\nnote: <b>\nmask: 0x1F\n"
	js, diags := manifests.ConfigJSON([]byte(config), "config.yaml", manifests.LoadOptions{})
	fmt.Println(string(js), len(diags))
	// Output:
	// {"max_price":250.50,"note":"<b>","mask":31} 0
}
