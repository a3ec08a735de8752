# The module's side of the bridge protocol, against the real engine process with the
# fixture methods of test/bridge/fixtures/test-methods.ts (progress, errors, cancel, crash).
BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    $env:HVBACKUP_BRIDGE_TEST_METHODS = $FixtureMethods
    Import-HVBackupForTest
}

AfterAll {
    Remove-Module HVBackup -Force -ErrorAction SilentlyContinue
    Remove-Item Env:HVBACKUP_BRIDGE_TEST_METHODS -ErrorAction SilentlyContinue
}

Describe 'Invoke-HVEngine' -Tag Unit {
    It 'starts the engine once and returns results of the same process' {
        InModuleScope HVBackup {
            $r = Invoke-HVEngine -Method 'test.echo' -Params @{ text = 'grüße'; list = @(1, 2); nested = @{ a = 'b' } }
            $r.text | Should -Be 'grüße'
            @($r.list) | Should -Be @(1, 2)
            $r.nested.a | Should -Be 'b'
            $first = $script:HVEngine.Process.Id
            [void](Invoke-HVEngine -Method 'test.echo' -Params @{})
            $script:HVEngine.Process.Id | Should -Be $first
            $script:HVEngine.Hello.protocol | Should -Be 1
        }
    }

    It 'turns progress messages into Write-Progress and completes the bar' {
        InModuleScope HVBackup {
            Mock Write-Progress {}
            [void](Invoke-HVEngine -Method 'test.progress' -Params @{ steps = 4; delayMs = 120 } -ProgressId 7)
            Should -Invoke Write-Progress -ParameterFilter { $Id -eq 7 -and $PercentComplete -eq 25 -and $Activity -eq 'test vm1' }
            Should -Invoke Write-Progress -ParameterFilter { $Id -eq 7 -and $Completed }
        }
    }

    It 'shows engine log messages with -Verbose' {
        InModuleScope HVBackup {
            $verbose = Invoke-HVEngine -Method 'test.progress' -Params @{ steps = 2 } -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
            @($verbose | ForEach-Object Message) | Should -Contain '[vm1] step 2 of 2'
        }
    }

    It 'maps <Code> to ErrorCategory <Category>' -TestCases @(
        @{ Code = 'ERR_NOT_FOUND'; Category = 'ObjectNotFound' }
        @{ Code = 'ERR_INVALID_ARGUMENT'; Category = 'InvalidArgument' }
        @{ Code = 'ERR_CORRUPT'; Category = 'InvalidData' }
        @{ Code = 'ERR_LOCKED'; Category = 'ResourceBusy' }
        @{ Code = 'ERR_AUTH'; Category = 'AuthenticationError' }
        @{ Code = 'ERR_CANCELLED'; Category = 'OperationStopped' }
        @{ Code = 'ERR_IO'; Category = 'WriteError' }
        @{ Code = 'ERR_INTERNAL'; Category = 'NotSpecified' }
    ) {
        InModuleScope HVBackup -Parameters @{ Code = $Code; Category = $Category } {
            param($Code, $Category)
            $caught = $null
            try { Invoke-HVEngine -Method 'test.fail' -Params @{ code = $Code; message = "boom $Code"; target = 'D:\repo\x' } } catch { $caught = $_ }
            $caught | Should -Not -BeNullOrEmpty
            $record = New-HVErrorRecord -ErrorObject $caught
            [string]$record.CategoryInfo.Category | Should -Be $Category
            $record.FullyQualifiedErrorId | Should -Be "HVBackup.$Code"
            $record.TargetObject | Should -Be 'D:\repo\x'
            $record.Exception.Message | Should -Be "boom $Code"
        }
    }

    It 'reports an unknown method as an invalid argument' {
        InModuleScope HVBackup {
            { Invoke-HVEngine -Method 'noSuchMethod' } | Should -Throw -ExpectedMessage '*unknown method "noSuchMethod"*'
        }
    }

    It 'restarts a dead engine on the next call and says so' {
        InModuleScope HVBackup {
            $old = $script:HVEngine.Process.Id
            { Invoke-HVEngine -Method 'test.crash' } | Should -Throw -ExpectedMessage '*exited with code 3*crashing on purpose*'
            $warnings = $null
            $r = Invoke-HVEngine -Method 'test.echo' -Params @{ ok = 1 } -WarningVariable warnings -WarningAction SilentlyContinue
            $r.ok | Should -Be 1
            $script:HVEngine.Process.Id | Should -Not -Be $old
            @($warnings) -join "`n" | Should -BeLike 'HVBackup engine restarted: *exited with code 3*'
        }
    }
}

Describe 'Starting the engine' -Tag Unit {
    BeforeEach {
        $script:savedRoot = $env:HVBACKUP_ENGINE_ROOT
        $script:savedNode = $env:HVBACKUP_NODE
        InModuleScope HVBackup { Stop-HVEngine }
    }
    AfterEach {
        $env:HVBACKUP_ENGINE_ROOT = $savedRoot
        $env:HVBACKUP_NODE = $savedNode
        InModuleScope HVBackup { Stop-HVEngine }
    }
    It 'names the missing engine and how to point at one' {
        $env:HVBACKUP_ENGINE_ROOT = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'no-engine'
        $caught = $null
        try { Get-HVRepository -Path (Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'repo') } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_NOT_FOUND,Get-HVRepository'
        $caught.Exception.Message | Should -BeLike '*no-engine*server.mjs does not exist*HVBACKUP_ENGINE_ROOT*'
    }
    It 'refuses an engine that speaks another protocol version' {
        $fake = Join-Path (Resolve-Path 'TestDrive:\').ProviderPath 'fake-engine'
        New-Item -ItemType Directory -Path (Join-Path $fake 'bridge') -Force | Out-Null
        Set-Content -LiteralPath (Join-Path $fake 'bridge/server.mjs') -Value 'process.stdout.write(JSON.stringify({ type: "hello", protocol: 99, engine: "9.9.9", node: process.version, pid: process.pid, methods: [] }) + "\n"); process.stdin.resume(); process.stdin.on("end", () => process.exit(0));'
        $env:HVBACKUP_ENGINE_ROOT = $fake
        $env:HVBACKUP_NODE = Join-Path $RepoRoot 'node_modules/node/bin/node'
        if ($env:OS -eq 'Windows_NT') { $env:HVBACKUP_NODE = Join-Path $RepoRoot 'node_modules/node/bin/node.exe' }
        $caught = $null
        try { Get-HVRepository -Path $fake } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'HVBackup.ERR_UNSUPPORTED,Get-HVRepository'
        $caught.Exception.Message | Should -BeLike '*protocol 99*speaks 1*'
    }
}

Describe 'Stopping a command (Ctrl+C)' -Tag Unit {
    It 'cancels the engine request, which unwinds and removes its partial file' {
        $file = Join-Path ([System.IO.Path]::GetTempPath()) ("hvb-cancel-" + [guid]::NewGuid() + '.part')
        $ps = [powershell]::Create()
        try {
            [void]$ps.AddScript({
                param($manifest, $fixture, $file)
                $env:HVBACKUP_BRIDGE_TEST_METHODS = $fixture
                Import-Module $manifest
                & (Get-Module HVBackup) { param($f) Invoke-HVEngine -Method 'test.wait' -Params @{ file = $f } } $file
            }).AddArgument($ModuleManifest).AddArgument($FixtureMethods).AddArgument($file)
            $async = $ps.BeginInvoke()
            $deadline = [datetime]::UtcNow.AddSeconds(30)
            while (-not (Test-Path -LiteralPath $file) -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            Test-Path -LiteralPath $file | Should -BeTrue -Because 'the engine started the operation'
            $ps.Stop()
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            Test-Path -LiteralPath $file | Should -BeFalse -Because 'the cancelled operation cleaned up before the stop returned'
        } finally {
            # Unload the module in that runspace: its engine's stdin closes and it exits.
            $ps.Commands.Clear()
            [void]$ps.AddScript({ Remove-Module HVBackup -Force -ErrorAction SilentlyContinue }).Invoke()
            $ps.Dispose()
            Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue
        }
    }
}
