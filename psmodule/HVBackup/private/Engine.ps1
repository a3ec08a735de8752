# The engine process and the bridge protocol's client side (docs/bridge-protocol.md).

$script:HVProtocolVersion = 1

function Get-HVEngineStartInfo {
    # Where the engine lives: $env:HVBACKUP_ENGINE_ROOT, else two folders above the module
    # (psmodule/HVBackup -> repository root). Its Node: $env:HVBACKUP_NODE, else the pinned one.
    [CmdletBinding()]
    [OutputType([System.Diagnostics.ProcessStartInfo])]
    param()
    $root = $env:HVBACKUP_ENGINE_ROOT
    if (-not $root) { $root = Split-Path -Parent (Split-Path -Parent $script:ModuleRoot) }
    $server = Join-Path (Join-Path $root 'bridge') 'server.mjs'
    $node = $env:HVBACKUP_NODE
    if (-not $node) {
        $exe = 'node'
        if ($env:OS -eq 'Windows_NT') { $exe = 'node.exe' }
        $node = Join-Path (Join-Path (Join-Path (Join-Path $root 'node_modules') 'node') 'bin') $exe
    }
    if (-not (Test-Path -LiteralPath $server -PathType Leaf)) {
        throw (New-HVEngineException -Code 'ERR_NOT_FOUND' -Message "HVBackup engine not found: $server does not exist (set `$env:HVBACKUP_ENGINE_ROOT to the engine folder)" -Target $server)
    }
    if (-not (Test-Path -LiteralPath $node -PathType Leaf)) {
        throw (New-HVEngineException -Code 'ERR_NOT_FOUND' -Message "Node for the HVBackup engine not found: $node does not exist (run 'npm install' in $root, or set `$env:HVBACKUP_NODE)" -Target $node)
    }
    $arguments = '"' + $server + '"'
    if ($env:HVBACKUP_BRIDGE_TEST_METHODS) { $arguments += ' --test-methods "' + $env:HVBACKUP_BRIDGE_TEST_METHODS + '"' }
    $utf8 = New-Object System.Text.UTF8Encoding($false)
    $psi = New-Object System.Diagnostics.ProcessStartInfo
    $psi.FileName = $node
    $psi.Arguments = $arguments
    $psi.WorkingDirectory = $root
    $psi.UseShellExecute = $false
    $psi.CreateNoWindow = $true
    $psi.RedirectStandardInput = $true
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.StandardOutputEncoding = $utf8
    $psi.StandardErrorEncoding = $utf8
    $psi
}

function Start-HVEngine {
    [CmdletBinding()]
    param()
    $psi = Get-HVEngineStartInfo
    $process = [System.Diagnostics.Process]::Start($psi)
    # StandardInput's own encoding cannot be set on .NET Framework: wrap its stream in UTF-8 without BOM.
    $writer = New-Object System.IO.StreamWriter($process.StandardInput.BaseStream, (New-Object System.Text.UTF8Encoding($false)))
    $writer.AutoFlush = $true
    $writer.NewLine = "`n"
    $engine = @{ Process = $process; Writer = $writer; OutTask = $null; ErrTask = $null; StdErr = New-Object System.Collections.Generic.Queue[string]; Hello = $null }
    $hello = Read-HVEngineMessage -Engine $engine -TimeoutMs 60000
    if ($null -eq $hello -or $hello.type -ne 'hello') {
        Stop-HVEngine -Engine $engine
        throw (New-HVEngineException -Code 'ERR_INTERNAL' -Message "HVBackup engine did not say hello within 60 s ($($psi.FileName) $($psi.Arguments)): $(Get-HVEngineStdErr -Engine $engine)")
    }
    if ($hello.protocol -ne $script:HVProtocolVersion) {
        Stop-HVEngine -Engine $engine
        throw (New-HVEngineException -Code 'ERR_UNSUPPORTED' -Message "HVBackup engine speaks bridge protocol $($hello.protocol); this module speaks $script:HVProtocolVersion. Update the module and the engine together.")
    }
    $engine.Hello = $hello
    Write-Verbose "HVBackup engine $($hello.engine) started (pid $($hello.pid), Node $($hello.node))"
    $engine
}

function Get-HVEngine {
    # The running engine, started on first use; a dead one is replaced, with a warning saying why.
    [CmdletBinding()]
    param()
    $engine = $script:HVEngine
    if ($null -ne $engine -and -not $engine.Process.HasExited) { return $engine }
    if ($null -ne $engine) {
        $why = "the previous engine (pid $($engine.Process.Id)) exited with code $($engine.Process.ExitCode)"
        $tail = Get-HVEngineStdErr -Engine $engine
        if ($tail) { $why += ": $tail" }
        Write-Warning "HVBackup engine restarted: $why"
    }
    $script:HVEngine = $null
    $script:HVEngine = Start-HVEngine
    $script:HVEngine
}

function Stop-HVEngine {
    [CmdletBinding()]
    param([hashtable] $Engine = $script:HVEngine)
    if ($null -eq $Engine) { return }
    try { $Engine.Writer.Close() } catch { Write-Debug "closing engine stdin: $_" }
    if (-not $Engine.Process.WaitForExit(5000)) {
        try { $Engine.Process.Kill() } catch { Write-Debug "killing engine: $_" }
    }
    if ($Engine -eq $script:HVEngine) { $script:HVEngine = $null }
}

function Get-HVEngineStdErr {
    [CmdletBinding()]
    [OutputType([string])]
    param([hashtable] $Engine)
    Receive-HVEngineStdErr -Engine $Engine
    (@($Engine.StdErr.ToArray()) | Select-Object -Last 5) -join ' | '
}

function Receive-HVEngineStdErr {
    # Drain what the engine wrote to stderr (so its pipe never fills); keep the last lines for messages.
    [CmdletBinding()]
    param([hashtable] $Engine)
    while ($true) {
        if ($null -eq $Engine.ErrTask) { $Engine.ErrTask = $Engine.Process.StandardError.ReadLineAsync() }
        if (-not $Engine.ErrTask.IsCompleted) { return }
        $line = $Engine.ErrTask.Result
        if ($null -eq $line) { return }
        $Engine.ErrTask = $null
        Write-Debug "engine: $line"
        $Engine.StdErr.Enqueue($line)
        while ($Engine.StdErr.Count -gt 40) { [void]$Engine.StdErr.Dequeue() }
    }
}

function Read-HVEngineMessage {
    # The next protocol message, or $null after TimeoutMs. Waits in short slices so that
    # Ctrl+C can stop the pipeline between them. Throws when the engine has gone.
    [CmdletBinding()]
    param([hashtable] $Engine, [int] $TimeoutMs = -1)
    $watch = [System.Diagnostics.Stopwatch]::StartNew()
    if ($null -eq $Engine.OutTask) { $Engine.OutTask = $Engine.Process.StandardOutput.ReadLineAsync() }
    while (-not $Engine.OutTask.Wait(100)) {
        Receive-HVEngineStdErr -Engine $Engine
        if ($TimeoutMs -ge 0 -and $watch.ElapsedMilliseconds -ge $TimeoutMs) { return $null }
    }
    $line = $Engine.OutTask.Result
    $Engine.OutTask = $null
    if ($null -eq $line) {
        [void]$Engine.Process.WaitForExit(2000)
        $code = 'unknown'
        if ($Engine.Process.HasExited) { $code = $Engine.Process.ExitCode }
        throw (New-HVEngineException -Code 'ERR_ENGINE_EXITED' -Message "HVBackup engine (pid $($Engine.Process.Id)) exited with code ${code}: $(Get-HVEngineStdErr -Engine $Engine)")
    }
    try {
        $line | ConvertFrom-Json
    } catch {
        throw (New-HVEngineException -Code 'ERR_INTERNAL' -Message "HVBackup engine sent a line that is not protocol JSON: $line")
    }
}

function Send-HVEngineLine {
    [CmdletBinding()]
    param([hashtable] $Engine, [object] $Message)
    $Engine.Writer.WriteLine((ConvertTo-Json -InputObject $Message -Depth 20 -Compress))
}
