{
  "targets": [
    {
      "target_name": "shm",
      "sources": ["shm.cc", "shmop.c", "sections.c"],
      "include_dirs": ["<!(node -p \"require('node:path').dirname(require.resolve('nan/nan.h'))\")"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=c99"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_C_LANGUAGE_STANDARD": "c99",
            "WARNING_CFLAGS": ["-Wall", "-Wextra"],
            "MACOSX_DEPLOYMENT_TARGET": "10.15"
          }
        }],
        ["OS=='win'", {
          "defines": ["_CRT_SECURE_NO_WARNINGS"],
          "msvs_settings": {
            "VCCLCompilerTool": {
              "WarningLevel": 4
            }
          }
        }]
      ]
    }
  ]
}
